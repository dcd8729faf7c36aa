"""Agent card (``agent-card.json``, §9.9): validation and the public (served) form.

``validate_agent_card`` checks a decoded card and returns a typed summary; the first broken
rule raises AgentCardError whose ``path`` (e.g. ``io.inputs[0].maxSizeBytes``) lets a CLI print
``agent-card.json: io.inputs[0].maxSizeBytes: must be an integer between 1 and 26214400``.
A top-level member outside the spec's list (§9.9) is an error naming the nearest valid one, so
a typo such as ``runtme`` is not silently ignored; ``skills`` points to its new name ``tags``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _card_checks as c
from .channels import is_valid_agent_name, validate_stream_id
from .constants import (
    DEFAULT_DECLARED_STREAM,
    MAX_UPLOAD_BYTES,
    STREAM_AFFINITIES,
    STREAM_DIRECTIONS,
    STREAM_FORMATS,
    STREAM_ID_MAX_BYTES,
    TASK_KIND_REQUEST,
    TASK_KINDS,
    StreamAffinity,
    StreamDirection,
    StreamFormat,
    TaskKind,
)
from .errors import AgentCardError, ProtocolError

__all__ = [
    "CARD_TOP_LEVEL_KEYS",
    "AgentCard",
    "CardInput",
    "CardOutput",
    "CardRuntime",
    "CardStream",
    "CardTag",
    "content_class",
    "public_card",
    "validate_agent_card",
]

content_class = c.content_class

#: The members an agent card may have (spec §9.9), plus ``$schema`` for editors.
CARD_TOP_LEVEL_KEYS: frozenset[str] = frozenset(
    {
        "$schema",
        "identity",
        "capabilities",
        "io",
        "streams",
        "security",
        "services",
        "extensions",
        "tags",
        "runtime",
    }
)


@dataclass(frozen=True)
class CardInput:
    """One ``io.inputs[]`` entry; ``content_class`` is form, text or file."""

    id: str
    description: str
    content_type: str
    required: bool
    content_class: c.ContentClass
    max_size_bytes: int | None = None
    accept: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardOutput:
    """One ``io.outputs[]`` entry."""

    id: str
    content_type: str
    guaranteed: bool
    description: str | None = None


@dataclass(frozen=True)
class CardStream:
    """One ``streams`` entry; ``affinity`` defaults to dedicated."""

    name: str
    direction: StreamDirection
    format: StreamFormat
    affinity: StreamAffinity = "dedicated"
    description: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class CardTag:
    """One ``tags[]`` entry."""

    id: str
    name: str
    description: str | None = None
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardRuntime:
    """``runtime``: how ``blocks-run`` starts the agent (never served publicly)."""

    handler: str
    handler_export: str = "handler"
    concurrency: int | None = None
    expected_instances: int | None = None
    max_pending_backlog: int | None = None
    max_running_time_sec: int | None = None


@dataclass(frozen=True)
class AgentCard:
    """A validated card: the fields runtimes need, plus the original ``document``."""

    agent_name: str
    display_name: str
    description: str
    version: str
    task_kinds: tuple[TaskKind, ...]
    inputs: tuple[CardInput, ...] = ()
    outputs: tuple[CardOutput, ...] = ()
    streams: Mapping[str, CardStream] = field(default_factory=dict)
    tags: tuple[CardTag, ...] = ()
    runtime: CardRuntime | None = None
    document: Mapping[str, Any] = field(default_factory=dict)

    @property
    def request_only(self) -> bool:
        """True if the agent accepts only request tasks."""
        return self.task_kinds == (TASK_KIND_REQUEST,)


def public_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """Return a shallow copy of ``card`` without ``runtime`` (the form the registry serves)."""
    return {k: v for k, v in card.items() if k != "runtime"}


def validate_agent_card(card: object) -> AgentCard:
    """Validate a decoded ``agent-card.json``; raise AgentCardError at the first broken rule.

    Pure and thread-safe. The returned AgentCard keeps ``card`` as ``document``.
    """
    doc = c.obj(card, "")
    if not doc:
        raise AgentCardError("", "the agent card is empty; it needs identity and capabilities")
    if "skills" in doc:
        raise AgentCardError("skills", "was renamed to 'tags'; move its entries to 'tags'")
    _known_keys(doc)
    identity = _identity(doc)
    task_kinds = _task_kinds(doc)
    io = c.opt_obj(doc, "io", "") or {}
    _security(doc)
    for key in ("services", "extensions"):
        c.opt_obj(doc, key, "")
    return AgentCard(
        agent_name=identity[0],
        display_name=identity[1],
        description=identity[2],
        version=identity[3],
        task_kinds=task_kinds,
        inputs=_inputs(io),
        outputs=_outputs(io),
        streams=_streams(doc, task_kinds),
        tags=_tags(doc),
        runtime=_runtime(doc),
        document=doc,
    )


def _known_keys(doc: Mapping[str, Any]) -> None:
    for key in doc:
        if key in CARD_TOP_LEVEL_KEYS:
            continue
        near = difflib.get_close_matches(str(key), sorted(CARD_TOP_LEVEL_KEYS), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        valid = ", ".join(sorted(CARD_TOP_LEVEL_KEYS - {"$schema"}))
        raise AgentCardError(str(key), f"is not an agent card member; {hint}valid ones: {valid}")


def _identity(doc: Mapping[str, Any]) -> tuple[str, str, str, str]:
    if doc.get("identity") is None:
        raise AgentCardError("identity", "is required")
    ident = c.obj(doc["identity"], "identity")
    name = c.req_string(ident, "agentName", "identity")
    if not is_valid_agent_name(name):
        raise AgentCardError(
            "identity.agentName",
            f"{name!r} must use only letters, digits and underscores (no hyphens or dots)",
        )
    display = c.req_string(ident, "displayName", "identity")
    description = c.req_string(ident, "description", "identity")
    version = c.req_string(ident, "version", "identity")
    if ident.get("provider") is None:
        raise AgentCardError("identity.provider", "is required (an object with organization)")
    provider = c.obj(ident["provider"], "identity.provider")
    c.req_string(provider, "organization", "identity.provider")
    c.string(provider, "url", "identity.provider", required=False)
    for key in ("documentationUrl", "repositoryUrl", "iconUrl"):
        c.string(ident, key, "identity", required=False)
    return name, display, description, version


def _task_kinds(doc: Mapping[str, Any]) -> tuple[TaskKind, ...]:
    if doc.get("capabilities") is None:
        raise AgentCardError("capabilities", "is required (with taskKinds)")
    caps = c.obj(doc["capabilities"], "capabilities")
    items = c.array(caps, "taskKinds", "capabilities")
    if not items:
        raise AgentCardError("capabilities.taskKinds", "must list at least one of request, pipe")
    kinds: list[TaskKind] = []
    for i, item in enumerate(items):
        p = f"capabilities.taskKinds[{i}]"
        kind = next((k for k in TASK_KINDS if k == item), None)
        if kind is None:
            raise AgentCardError(p, f"must be request or pipe, got {item!r}")
        if kind in kinds:
            raise AgentCardError(p, f"{kind!r} is listed twice")
        kinds.append(kind)
    return tuple(kinds)


def _inputs(io: Mapping[str, Any]) -> tuple[CardInput, ...]:
    seen: dict[str, str] = {}
    result = []
    for i, raw in enumerate(c.array(io, "inputs", "io") or []):
        p = f"io.inputs[{i}]"
        entry = c.obj(raw, p)
        input_id = c.req_string(entry, "id", p)
        c.unique_id(seen, input_id, f"{p}.id")
        content_type = c.media_type(entry, "contentType", p, required=True) or ""
        cls = c.content_class(content_type)
        where = f"for {cls} inputs (contentType {content_type!r})"
        if cls == "form":
            c.forbid(entry, ("accept", "maxSizeBytes"), p, where)
            schema = entry.get("schema")
            if not isinstance(schema, Mapping) or schema.get("type") != "object":
                raise AgentCardError(
                    f"{p}.schema", 'is required: an object schema {"type": "object"}'
                )
            if not isinstance(entry.get("example"), Mapping):
                raise AgentCardError(f"{p}.example", "is required: an example JSON object")
        elif cls == "text":
            c.forbid(entry, ("schema", "accept"), p, where)
            if entry.get("example") is not None:
                c.string(entry, "example", p, required=False)
        else:
            c.forbid(entry, ("schema", "example"), p, where)
        accept = c.string_list(entry, "accept", p)
        if accept is not None:
            if not accept:
                raise AgentCardError(f"{p}.accept", "must list at least one media type")
            for j, media in enumerate(accept):
                if not c.is_media_type(media):
                    raise AgentCardError(f"{p}.accept[{j}]", f"must be a media type, got {media!r}")
        result.append(
            CardInput(
                id=input_id,
                description=c.req_string(entry, "description", p),
                content_type=content_type,
                required=bool(c.boolean(entry, "required", p, required=True)),
                content_class=cls,
                max_size_bytes=c.integer(
                    entry, "maxSizeBytes", p, minimum=1, maximum=MAX_UPLOAD_BYTES
                ),
                accept=accept or (),
            )
        )
    return tuple(result)


def _outputs(io: Mapping[str, Any]) -> tuple[CardOutput, ...]:
    seen: dict[str, str] = {}
    result = []
    for i, raw in enumerate(c.array(io, "outputs", "io") or []):
        p = f"io.outputs[{i}]"
        entry = c.obj(raw, p)
        output_id = c.req_string(entry, "id", p)
        c.unique_id(seen, output_id, f"{p}.id")
        c.opt_obj(entry, "schema", p)
        result.append(
            CardOutput(
                id=output_id,
                content_type=c.media_type(entry, "contentType", p, required=True) or "",
                guaranteed=bool(c.boolean(entry, "guaranteed", p, required=True)),
                description=c.string(entry, "description", p, required=False),
            )
        )
    return tuple(result)


def _streams(doc: Mapping[str, Any], task_kinds: tuple[TaskKind, ...]) -> dict[str, CardStream]:
    streams = c.opt_obj(doc, "streams", "") or {}
    result: dict[str, CardStream] = {}
    for name, raw in streams.items():
        p = f"streams.{name}"
        try:
            validate_stream_id(name)
        except ProtocolError:
            raise AgentCardError(
                p,
                "stream names use only letters, digits, '_' and '-' "
                f"(at most {STREAM_ID_MAX_BYTES} bytes)",
            ) from None
        if task_kinds == (TASK_KIND_REQUEST,) and name != DEFAULT_DECLARED_STREAM:
            raise AgentCardError(
                p,
                f"request-only agents may declare only the {DEFAULT_DECLARED_STREAM!r} stream; "
                "rename it or add 'pipe' to capabilities.taskKinds",
            )
        entry = c.obj(raw, p)
        direction = c.choice(entry, "direction", p, STREAM_DIRECTIONS, required=True)
        fmt = c.choice(entry, "format", p, STREAM_FORMATS, required=True)
        affinity = c.choice(entry, "affinity", p, STREAM_AFFINITIES, required=False) or "dedicated"
        if name == DEFAULT_DECLARED_STREAM and affinity == "shared":
            raise AgentCardError(f"{p}.affinity", "the '_default' stream cannot be shared")
        for key in ("schema", "outboundSchema", "inboundSchema"):
            c.opt_obj(entry, key, p)
        if direction is None or fmt is None:  # unreachable: required=True raises instead
            raise AgentCardError(p, "needs direction and format")
        result[name] = CardStream(
            name=name,
            direction=direction,
            format=fmt,
            affinity=affinity,
            description=c.string(entry, "description", p, required=False),
            content_type=c.media_type(entry, "contentType", p, required=False),
        )
    return result


def _tags(doc: Mapping[str, Any]) -> tuple[CardTag, ...]:
    seen: dict[str, str] = {}
    result = []
    for i, raw in enumerate(c.array(doc, "tags", "") or []):
        p = f"tags[{i}]"
        entry = c.obj(raw, p)
        tag_id = c.req_string(entry, "id", p)
        c.unique_id(seen, tag_id, f"{p}.id")
        result.append(
            CardTag(
                id=tag_id,
                name=c.req_string(entry, "name", p),
                description=c.string(entry, "description", p, required=False),
                examples=c.string_list(entry, "examples", p) or (),
            )
        )
    return tuple(result)


def _security(doc: Mapping[str, Any]) -> None:
    security = c.opt_obj(doc, "security", "")
    if security is None:
        return
    enc = c.opt_obj(security, "encryption", "security")
    if enc is None:
        return
    p = "security.encryption"
    c.boolean(enc, "required", p, required=True)
    c.req_string(enc, "algorithm", p)
    c.boolean(enc, "consumerKeyRequired", p, required=True)
    for key in ("agentPublicKey", "agentKeyUrl", "documentationUrl"):
        c.string(enc, key, p, required=False)


def _runtime(doc: Mapping[str, Any]) -> CardRuntime | None:
    runtime = c.opt_obj(doc, "runtime", "")
    if runtime is None:
        return None
    p = "runtime"
    return CardRuntime(
        handler=c.req_string(runtime, "handler", p),
        handler_export=c.string(runtime, "handlerExport", p, required=False) or "handler",
        concurrency=c.integer(runtime, "concurrency", p, minimum=1),
        expected_instances=c.integer(runtime, "expectedInstances", p, minimum=0),
        max_pending_backlog=c.integer(runtime, "maxPendingBacklog", p, minimum=0),
        max_running_time_sec=c.integer(runtime, "maxRunningTimeSec", p, minimum=1),
    )
