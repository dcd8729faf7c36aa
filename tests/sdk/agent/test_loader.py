"""Handler registry and card loading (protocol §9.4, §9.5), with one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from blocks_network.handlers.adder import adder_handler
from blocks_network.handlers.echo import echo_handler
from blocks_network.handlers.loader import (
    HandlerLoadError,
    default_registry_path,
    load_card_handler,
    load_registry_handler,
)


@pytest.fixture(autouse=True)
def _restore_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a handler file puts its folder on sys.path; keep that inside each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "helper", raising=False)


def test_packaged_registry_has_echo_and_adder_with_valid_agent_names() -> None:
    echo = load_registry_handler("echo")
    adder = load_registry_handler("adder")
    assert (echo.agent_name, echo.handler) == ("echo", echo_handler)
    assert (adder.agent_name, adder.handler) == ("adder", adder_handler)
    doc = json.loads(default_registry_path().read_text())
    assert doc["schemaVersion"] and all(h["runtime"] == "python" for h in doc["handlers"])


def _registry(folder: Path, *entries: dict[str, Any]) -> Path:
    path = folder / "registry.json"
    path.write_text(json.dumps({"schemaVersion": "1.0", "handlers": list(entries)}))
    return path


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "mine",
        "agentName": "mine",
        "runtime": "python",
        "entrypoint": {"path": "./handlers/mine.py", "symbol": "run"},
        "defaults": {"concurrency": 3, "expectedInstances": 2},
    }
    entry.update(overrides)
    return entry


def test_custom_registry_file_relative_to_the_registry(tmp_path: Path) -> None:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "mine.py").write_text(
        "def run(task, ctx):\n    return {'artifacts': []}\n"
    )
    loaded = load_registry_handler("mine", _registry(tmp_path, _entry()))
    assert loaded.handler(None, None) == {"artifacts": []}  # type: ignore[arg-type]
    assert (loaded.concurrency, loaded.expected_instances) == (3, 2)


def test_builtin_module_fallback_for_handlers_paths(tmp_path: Path) -> None:
    entry = _entry(entrypoint={"path": "./handlers/echo.py", "symbol": "echo_handler"})
    assert load_registry_handler("mine", _registry(tmp_path, entry)).handler is echo_handler


def test_other_runtimes_are_not_candidates(tmp_path: Path) -> None:
    path = _registry(tmp_path, _entry(runtime="node"))
    with pytest.raises(
        HandlerLoadError, match=r"no python handler named 'mine' \(available: none\)"
    ):
        load_registry_handler("mine", path)


def test_requires_env(tmp_path: Path) -> None:
    entry = _entry(
        requiresEnv=["OPENAI_API_KEY"],
        entrypoint={"path": "./handlers/echo.py", "symbol": "echo_handler"},
    )
    path = _registry(tmp_path, entry)
    with pytest.raises(HandlerLoadError) as info:
        load_registry_handler("mine", path, environ={})
    assert (
        str(info.value)
        == "registry.json: handlers[0].requiresEnv: set OPENAI_API_KEY (in the environment or ./.env)"
    )
    assert (
        load_registry_handler("mine", path, environ={"OPENAI_API_KEY": "x"}).handler is echo_handler
    )


def test_import_error_in_the_handler_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "mine.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(HandlerLoadError) as info:
        load_registry_handler("mine", _registry(tmp_path, _entry()))
    message = str(info.value)
    assert message.startswith(
        "registry.json: handlers[0].entrypoint.path: importing mine.py failed:"
    )
    assert "\n" not in message


def test_non_callable_symbol(tmp_path: Path) -> None:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "mine.py").write_text("run = 42\n")
    with pytest.raises(HandlerLoadError, match=r"'run' in \./handlers/mine\.py is not a function"):
        load_registry_handler("mine", _registry(tmp_path, _entry()))


def test_bad_defaults(tmp_path: Path) -> None:
    path = _registry(tmp_path, _entry(defaults={"concurrency": -1}))
    with pytest.raises(
        HandlerLoadError, match=r"handlers\[0\]\.defaults\.concurrency: must be an integer ≥ 0"
    ):
        load_registry_handler("mine", path)


def _card(folder: Path, **runtime: Any) -> Path:
    card = {
        "identity": {
            "agentName": "carded",
            "displayName": "Carded",
            "description": "d",
            "version": "1",
            "provider": {"organization": "o"},
        },
        "capabilities": {"taskKinds": ["request", "pipe"]},
        "tags": [{"id": "t", "name": "T"}],
        "runtime": runtime,
    }
    path = folder / "agent-card.json"
    path.write_text(json.dumps(card))
    return path


def test_card_mode_loads_handler_relative_to_the_card(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "helper.py").write_text("VALUE = 'from a sibling module'\n")
    (tmp_path / "src" / "main.py").write_text(
        "from helper import VALUE\n\ndef handler(task, ctx):\n    return VALUE\n"
    )
    loaded = load_card_handler(
        _card(
            tmp_path,
            handler="src/main.py",
            concurrency=4,
            expectedInstances=0,
            maxPendingBacklog=5,
            maxRunningTimeSec=9,
        )
    )
    assert loaded.handler(None, None) == "from a sibling module"  # type: ignore[arg-type]
    assert (loaded.agent_name, loaded.concurrency, loaded.expected_instances) == ("carded", 4, 0)
    assert (loaded.max_pending_backlog, loaded.max_running_time_sec) == (5, 9)
    assert loaded.card["runtime"]["handler"] == "src/main.py"
    assert loaded.tags == [{"id": "t", "name": "T"}]


def test_card_defaults(tmp_path: Path) -> None:
    (tmp_path / "h.py").write_text("def handler(task, ctx):\n    return None\n")
    loaded = load_card_handler(_card(tmp_path, handler="h.py"))
    assert (loaded.concurrency, loaded.expected_instances, loaded.max_pending_backlog) == (
        1,
        1,
        None,
    )


def test_card_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(HandlerLoadError, match=r"^agent-card.json: runtime.concurrency: "):
        load_card_handler(_card(tmp_path, handler="h.py", concurrency=0))
    path = tmp_path / "agent-card.json"
    path.write_text("[]")
    with pytest.raises(HandlerLoadError, match=r"^agent-card.json: "):
        load_card_handler(path)
    with pytest.raises(HandlerLoadError, match="file not found"):
        load_card_handler(tmp_path / "missing" / "agent-card.json")
