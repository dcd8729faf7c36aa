"""Agent card validation (protocol §9.9): accept and reject tables."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from blocks_network.protocol import (
    CARD_TOP_LEVEL_KEYS,
    AgentCardError,
    CardStream,
    content_class,
    public_card,
    validate_agent_card,
)


def base_card() -> dict[str, Any]:
    """A card using every section, valid as written."""
    return {
        "identity": {
            "agentName": "image_gen",
            "displayName": "Image generator",
            "description": "Draws pictures",
            "version": "1.0.0",
            "provider": {"organization": "Acme", "url": "https://acme.example"},
            "documentationUrl": "https://acme.example/docs",
        },
        "capabilities": {"taskKinds": ["request", "pipe"]},
        "io": {
            "inputs": [
                {"id": "prompt", "description": "What to draw", "contentType": "text/plain",
                 "required": True, "example": "a cat", "maxSizeBytes": 4096},
                {"id": "options", "description": "Knobs", "contentType": "application/json",
                 "required": False, "schema": {"type": "object"}, "example": {"steps": 20}},
                {"id": "image", "description": "Seed image", "contentType": "image/png",
                 "required": False, "accept": ["image/png", "image/*"],
                 "maxSizeBytes": 26214400},
            ],
            "outputs": [
                {"id": "picture", "contentType": "image/png", "guaranteed": True,
                 "description": "The result"},
                {"id": "meta", "contentType": "application/json", "guaranteed": False,
                 "schema": {"type": "object"}, "example": {"seed": 1}},
            ],
        },
        "streams": {
            "_default": {"direction": "outbound", "format": "events"},
            "preview": {"direction": "outbound", "format": "bytes", "affinity": "shared",
                        "contentType": "image/jpeg", "description": "Previews"},
            "control": {"direction": "bidirectional", "format": "events",
                        "affinity": "dedicated", "inboundSchema": {}, "outboundSchema": {}},
        },
        "tags": [{"id": "images", "name": "Image Generation", "examples": ["draw a cat"]}],
        "security": {"encryption": {"required": False, "algorithm": "x25519",
                                    "consumerKeyRequired": False}},
        "services": {"webhooks": []},
        "extensions": {"x": 1},
        "runtime": {"handler": "./handler.py", "handlerExport": "run", "concurrency": 2,
                    "expectedInstances": 0, "maxPendingBacklog": 10, "maxRunningTimeSec": 60},
    }  # fmt: skip


def minimal_card() -> dict[str, Any]:
    return {
        "identity": {
            "agentName": "echo",
            "displayName": "Echo",
            "description": "Echoes",
            "version": "0.1.0",
            "provider": {"organization": "Acme"},
        },
        "capabilities": {"taskKinds": ["request"]},
    }


def test_full_card_is_accepted_and_summarised() -> None:
    card = validate_agent_card(base_card())
    assert card.agent_name == "image_gen"
    assert card.task_kinds == ("request", "pipe")
    assert not card.request_only
    assert [i.content_class for i in card.inputs] == ["text", "form", "file"]
    assert card.inputs[2].accept == ("image/png", "image/*")
    assert card.inputs[2].max_size_bytes == 26214400
    assert [o.id for o in card.outputs] == ["picture", "meta"]
    assert card.streams["_default"] == CardStream("_default", "outbound", "events", "dedicated")
    assert card.streams["preview"].affinity == "shared"
    assert card.tags[0].examples == ("draw a cat",)
    assert card.runtime is not None and card.runtime.handler_export == "run"
    assert card.document["extensions"] == {"x": 1}


def test_minimal_card_is_accepted() -> None:
    card = validate_agent_card(minimal_card())
    assert card.request_only
    assert card.inputs == () and card.streams == {} and card.runtime is None


def test_request_only_agent_may_declare_default_stream() -> None:
    card = minimal_card()
    card["streams"] = {"_default": {"direction": "outbound", "format": "bytes"}}
    assert validate_agent_card(card).streams["_default"].format == "bytes"


def test_runtime_defaults() -> None:
    card = minimal_card()
    card["runtime"] = {"handler": "h.py"}
    runtime = validate_agent_card(card).runtime
    assert runtime is not None
    assert runtime.handler_export == "handler"
    assert runtime.concurrency is None


def _set(card: dict[str, Any], path: str, value: Any) -> None:
    """Set (or delete, for value ...) the member at a dotted path with [i] indexes."""
    parts: list[str | int] = []
    for token in path.replace("]", "").split("."):
        name, *indexes = token.split("[")
        parts.append(name)
        parts.extend(int(i) for i in indexes)
    target: Any = card
    for part in parts[:-1]:
        target = target[part]
    if value is ...:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value


REJECTS: list[tuple[str, Any, str, str]] = [
    # (path to change, new value or ... to delete, expected error path, message fragment)
    ("identity", ..., "identity", "is required"),
    ("identity", "echo", "identity", "must be an object"),
    ("identity.agentName", "image-gen", "identity.agentName", "letters, digits and underscores"),
    ("identity.agentName", ..., "identity.agentName", "is required"),
    ("identity.agentName", 5, "identity.agentName", "non-empty string"),
    ("identity.displayName", "", "identity.displayName", "non-empty string"),
    ("identity.version", ..., "identity.version", "is required"),
    ("identity.provider", ..., "identity.provider", "is required"),
    ("identity.provider.organization", ..., "identity.provider.organization", "is required"),
    ("identity.iconUrl", 3, "identity.iconUrl", "non-empty string"),
    ("capabilities", ..., "capabilities", "is required"),
    ("capabilities.taskKinds", [], "capabilities.taskKinds", "at least one"),
    ("capabilities.taskKinds", ..., "capabilities.taskKinds", "at least one"),
    ("capabilities.taskKinds", "request", "capabilities.taskKinds", "must be an array"),
    ("capabilities.taskKinds", ["request", "batch"], "capabilities.taskKinds[1]", "request or pipe"),
    ("capabilities.taskKinds", ["pipe", "pipe"], "capabilities.taskKinds[1]", "listed twice"),
    ("io", [], "io", "must be an object"),
    ("io.inputs", {}, "io.inputs", "must be an array"),
    ("io.inputs[0]", "prompt", "io.inputs[0]", "must be an object"),
    ("io.inputs[0].id", ..., "io.inputs[0].id", "is required"),
    ("io.inputs[1].id", "prompt", "io.inputs[1].id", "duplicate id 'prompt'"),
    ("io.inputs[0].description", ..., "io.inputs[0].description", "is required"),
    ("io.inputs[0].contentType", ..., "io.inputs[0].contentType", "is required"),
    ("io.inputs[0].contentType", "plain", "io.inputs[0].contentType", "media type"),
    ("io.inputs[0].required", ..., "io.inputs[0].required", "is required"),
    ("io.inputs[0].required", "yes", "io.inputs[0].required", "true or false"),
    ("io.inputs[0].maxSizeBytes", 0, "io.inputs[0].maxSizeBytes", "between 1 and 26214400"),
    ("io.inputs[2].maxSizeBytes", 26214401, "io.inputs[2].maxSizeBytes", "between 1 and 26214400"),
    ("io.inputs[2].maxSizeBytes", True, "io.inputs[2].maxSizeBytes", "must be an integer"),
    ("io.inputs[2].maxSizeBytes", 10.5, "io.inputs[2].maxSizeBytes", "must be an integer"),
    ("io.inputs[0].schema", {"type": "string"}, "io.inputs[0].schema", "not allowed for text"),
    ("io.inputs[0].accept", ["text/plain"], "io.inputs[0].accept", "not allowed for text"),
    ("io.inputs[0].example", 5, "io.inputs[0].example", "non-empty string"),
    ("io.inputs[1].schema", ..., "io.inputs[1].schema", "object schema"),
    ("io.inputs[1].schema", {"type": "array"}, "io.inputs[1].schema", "object schema"),
    ("io.inputs[1].example", ..., "io.inputs[1].example", "example JSON object"),
    ("io.inputs[1].example", "steps=20", "io.inputs[1].example", "example JSON object"),
    ("io.inputs[1].maxSizeBytes", 10, "io.inputs[1].maxSizeBytes", "not allowed for form"),
    ("io.inputs[1].accept", ["a/b"], "io.inputs[1].accept", "not allowed for form"),
    ("io.inputs[2].schema", {}, "io.inputs[2].schema", "not allowed for file"),
    ("io.inputs[2].example", "x.png", "io.inputs[2].example", "not allowed for file"),
    ("io.inputs[2].accept", [], "io.inputs[2].accept", "at least one"),
    ("io.inputs[2].accept", ["png"], "io.inputs[2].accept[0]", "media type"),
    ("io.inputs[2].accept", [""], "io.inputs[2].accept[0]", "non-empty string"),
    ("io.outputs[0].guaranteed", ..., "io.outputs[0].guaranteed", "is required"),
    ("io.outputs[0].contentType", "png", "io.outputs[0].contentType", "media type"),
    ("io.outputs[1].id", "picture", "io.outputs[1].id", "duplicate id"),
    ("io.outputs[1].schema", "object", "io.outputs[1].schema", "must be an object"),
    ("streams", [], "streams", "must be an object"),
    ("streams._default.affinity", "shared", "streams._default.affinity", "cannot be shared"),
    ("streams._default.direction", ..., "streams._default.direction", "is required"),
    ("streams._default.direction", "up", "streams._default.direction", "must be one of"),
    ("streams.preview.format", "video", "streams.preview.format", "must be one of"),
    ("streams.preview.affinity", "pooled", "streams.preview.affinity", "must be one of"),
    ("streams.preview.schema", [], "streams.preview.schema", "must be an object"),
    ("streams.bad name", {"direction": "outbound", "format": "bytes"}, "streams.bad name",
     "letters, digits"),
    ("tags", {}, "tags", "must be an array"),
    ("tags[0].name", ..., "tags[0].name", "is required"),
    ("tags[0].examples", ["ok", 3], "tags[0].examples[1]", "non-empty string"),
    ("security.encryption.algorithm", ..., "security.encryption.algorithm", "is required"),
    ("security.encryption.required", "no", "security.encryption.required", "true or false"),
    ("services", [], "services", "must be an object"),
    ("extensions", "x", "extensions", "must be an object"),
    ("runtime.handler", ..., "runtime.handler", "is required"),
    ("runtime.concurrency", 0, "runtime.concurrency", "≥ 1"),
    ("runtime.expectedInstances", -1, "runtime.expectedInstances", "≥ 0"),
    ("runtime.maxPendingBacklog", "10", "runtime.maxPendingBacklog", "≥ 0"),
    ("runtime.maxRunningTimeSec", 0, "runtime.maxRunningTimeSec", "≥ 1"),
    ("skills", [{"id": "x", "name": "X"}], "skills", "renamed to 'tags'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragment"), REJECTS, ids=[f"{r[0]}" for r in REJECTS]
)
def test_rejects(path: str, value: Any, error_path: str, fragment: str) -> None:
    card = copy.deepcopy(base_card())
    _set(card, path, value)
    with pytest.raises(AgentCardError) as info:
        validate_agent_card(card)
    assert info.value.path == error_path
    assert fragment in info.value.reason
    assert str(info.value) == f"{error_path}: {info.value.reason}"


def test_request_only_agent_may_not_declare_named_streams() -> None:
    card = minimal_card()
    card["streams"] = {"live": {"direction": "outbound", "format": "bytes"}}
    with pytest.raises(AgentCardError) as info:
        validate_agent_card(card)
    assert info.value.path == "streams.live"
    assert "request-only" in info.value.reason


@pytest.mark.parametrize("card", [None, [], "card", {}])
def test_rejects_non_cards(card: Any) -> None:
    with pytest.raises(AgentCardError):
        validate_agent_card(card)


def test_a_misspelled_top_level_member_names_the_nearest_valid_one() -> None:
    card = base_card()
    card["runtme"] = card.pop("runtime")
    with pytest.raises(AgentCardError) as info:
        validate_agent_card(card)
    assert info.value.path == "runtme"
    assert info.value.reason.startswith("is not an agent card member; did you mean 'runtime'? ")
    card = base_card()
    card["zzz"] = 1
    with pytest.raises(AgentCardError, match=r"^zzz: is not an agent card member; valid ones: cap"):
        validate_agent_card(card)


def test_every_member_of_the_spec_and_schema_is_accepted() -> None:
    card = base_card()
    card.update({"$schema": "./agent-card.schema.json", "services": {}, "extensions": {"x": 1}})
    assert set(card) <= CARD_TOP_LEVEL_KEYS
    validate_agent_card(card)


def test_stream_names_with_dots_are_rejected() -> None:
    card = base_card()
    card["streams"]["a.b"] = {"direction": "outbound", "format": "bytes"}
    with pytest.raises(AgentCardError, match="letters, digits"):
        validate_agent_card(card)


def test_public_card_drops_runtime_only() -> None:
    card = base_card()
    public = public_card(card)
    assert "runtime" not in public
    assert "runtime" in card
    assert public["identity"] == card["identity"]
    validate_agent_card(public)


@pytest.mark.parametrize(
    ("content_type", "klass"),
    [
        ("application/json", "form"),
        ("application/vnd.api+json", "form"),
        ("application/x-www-form-urlencoded", "form"),
        ("Application/JSON; charset=utf-8", "form"),
        ("text/plain", "text"),
        ("text/markdown", "text"),
        ("image/png", "file"),
        ("application/pdf", "file"),
        ("application/octet-stream", "file"),
    ],
)
def test_content_classes(content_type: str, klass: str) -> None:
    assert content_class(content_type) == klass
