"""Finding a handler: in a ``registry.json`` (protocol §9.4) or next to an ``agent-card.json``.

Every problem raises :class:`HandlerLoadError` whose message is one line naming the file and
the field, e.g. ``registry.json: handlers[1].entrypoint.symbol: 'run' is not defined in
./handlers/mine.py``, so ``blocks-run`` can print it as is.

Registry entrypoints: ``entrypoint.path`` is a file relative to the registry file; when no such
file exists, a ``./handlers/<name>.py`` path names the built-in module
``blocks_network.handlers.<name>`` (how the packaged registry finds echo and adder).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from blocks_network.errors import ConfigError
from blocks_network.protocol.agent_card import validate_agent_card
from blocks_network.protocol.channels import is_valid_agent_name
from blocks_network.protocol.errors import AgentCardError
from blocks_network.types import Handler

__all__ = [
    "CARD_FILE_NAME",
    "DEFAULT_HANDLER_NAME",
    "CardHandler",
    "HandlerLoadError",
    "RegistryHandler",
    "default_registry_path",
    "load_card_handler",
    "load_registry_handler",
]

CARD_FILE_NAME = "agent-card.json"
DEFAULT_HANDLER_NAME = "echo"
_PYTHON_RUNTIME = "python"
_DEFAULT_EXPORT = "handler"
_BUILTIN_PACKAGE = "blocks_network.handlers"
_BUILTIN_PATH_RE = re.compile(r"(?:\./)?handlers/([A-Za-z_][A-Za-z0-9_]*)\.py")


class HandlerLoadError(ConfigError):
    """A registry, card or handler file cannot be used; ``str()`` is one line for the user."""

    def __init__(self, file: str | Path, where: str, problem: str) -> None:
        name = Path(file).name if str(file) else "<handler>"
        super().__init__(f"{name}: {where}: {problem}" if where else f"{name}: {problem}")
        self.file = str(file)
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class RegistryHandler:
    """A registry entry, resolved: the callable plus how to run it."""

    name: str
    agent_name: str
    handler: Handler
    description: str | None = None
    tags: tuple[str, ...] = ()
    concurrency: int = 1
    expected_instances: int = 1
    source: str = ""


@dataclass(frozen=True)
class CardHandler:
    """Card mode: the card (passed through to the instance), its handler and runtime numbers."""

    card: dict[str, Any]
    agent_name: str
    handler: Handler
    handler_file: str
    concurrency: int = 1
    expected_instances: int = 1
    max_pending_backlog: int | None = None
    max_running_time_sec: int | None = None
    description: str | None = None
    tags: list[dict[str, Any]] = field(default_factory=list)


def default_registry_path() -> Path:
    """The registry shipped with the package (echo and adder)."""
    return Path(__file__).with_name("registry.json")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HandlerLoadError(path, "", f"file not found ({path})") from None
    except OSError as exc:
        raise HandlerLoadError(path, "", f"cannot read it: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise HandlerLoadError(path, "", f"not valid JSON: {exc}") from None


def _str_field(obj: Mapping[str, Any], key: str, file: Path, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise HandlerLoadError(file, f"{where}{key}", "required, must be a non-empty string")
    return value


def _int_field(
    obj: Mapping[str, Any], key: str, file: Path, where: str, *, minimum: int
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HandlerLoadError(
            file, f"{where}{key}", f"must be an integer ≥ {minimum}, got {value!r}"
        )
    return value


def _import_file(path: Path, file: Path, where: str) -> ModuleType:
    module_name = f"blocks_user_handler_{abs(hash(str(path)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise HandlerLoadError(file, where, f"{path.name} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Let a handler file import the modules that sit next to it.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise HandlerLoadError(
            file, where, f"importing {path.name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _import_builtin(module_name: str, file: Path, where: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerLoadError(file, where, f"no such file or built-in handler ({exc})") from exc


def _symbol(module: ModuleType, symbol: str, file: Path, where: str, shown: str) -> Handler:
    handler = getattr(module, symbol, None)
    if handler is None:
        raise HandlerLoadError(file, where, f"{symbol!r} is not defined in {shown}")
    if not callable(handler):
        raise HandlerLoadError(file, where, f"{symbol!r} in {shown} is not a function")
    return handler  # type: ignore[no-any-return]


def _entrypoint(entry: Mapping[str, Any], file: Path, where: str) -> tuple[Handler, str]:
    ep = entry.get("entrypoint")
    if not isinstance(ep, Mapping):
        raise HandlerLoadError(file, f"{where}entrypoint", "required, must be {path, symbol}")
    rel = _str_field(ep, "path", file, f"{where}entrypoint.")
    symbol = _str_field(ep, "symbol", file, f"{where}entrypoint.")
    candidate = (file.parent / rel).resolve()
    if candidate.is_file():
        module = _import_file(candidate, file, f"{where}entrypoint.path")
    else:
        builtin = _BUILTIN_PATH_RE.fullmatch(rel)
        if builtin is None:
            raise HandlerLoadError(
                file,
                f"{where}entrypoint.path",
                f"file not found: {rel} (relative to {file.parent})",
            )
        module = _import_builtin(
            f"{_BUILTIN_PACKAGE}.{builtin.group(1)}", file, f"{where}entrypoint.path"
        )
    return _symbol(module, symbol, file, f"{where}entrypoint.symbol", rel), rel


def load_registry_handler(
    name: str, registry_path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> RegistryHandler:
    """Find handler ``name`` (runtime ``python``) in a registry file and import it.

    ``registry_path`` defaults to the packaged registry. ``environ`` is checked for the
    entry's ``requiresEnv`` variables. Raises HandlerLoadError naming the file and field.
    """
    file = Path(registry_path) if registry_path is not None else default_registry_path()
    doc = _read_json(file)
    if not isinstance(doc, Mapping):
        raise HandlerLoadError(file, "", "must be a JSON object with schemaVersion and handlers")
    _str_field(doc, "schemaVersion", file, "")
    handlers = doc.get("handlers")
    if not isinstance(handlers, list) or not handlers:
        raise HandlerLoadError(file, "handlers", "required, must be a non-empty array")
    known: list[str] = []
    for index, entry in enumerate(handlers):
        where = f"handlers[{index}]."
        if not isinstance(entry, Mapping):
            raise HandlerLoadError(file, f"handlers[{index}]", "must be an object")
        entry_name = _str_field(entry, "name", file, where)
        runtime = entry.get("runtime")
        if runtime != _PYTHON_RUNTIME:
            continue
        known.append(entry_name)
        if entry_name != name:
            continue
        agent_name = _str_field(entry, "agentName", file, where)
        if not is_valid_agent_name(agent_name):
            raise HandlerLoadError(
                file,
                f"{where}agentName",
                f"{agent_name!r} must use only letters, digits and underscores (no hyphens)",
            )
        required = entry.get("requiresEnv") or []
        if not isinstance(required, list) or not all(isinstance(v, str) for v in required):
            raise HandlerLoadError(
                file, f"{where}requiresEnv", "must be an array of variable names"
            )
        env = environ if environ is not None else {}
        missing = [var for var in required if not env.get(var)]
        if missing:
            raise HandlerLoadError(
                file,
                f"{where}requiresEnv",
                f"set {', '.join(missing)} (in the environment or ./.env)",
            )
        defaults = entry.get("defaults") or {}
        if not isinstance(defaults, Mapping):
            raise HandlerLoadError(file, f"{where}defaults", "must be an object")
        concurrency = _int_field(defaults, "concurrency", file, f"{where}defaults.", minimum=0)
        expected = _int_field(defaults, "expectedInstances", file, f"{where}defaults.", minimum=0)
        tags = entry.get("tags") or []
        description = entry.get("description")
        handler, rel = _entrypoint(entry, file, where)
        return RegistryHandler(
            name=entry_name,
            agent_name=agent_name,
            handler=handler,
            description=description if isinstance(description, str) else None,
            tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
            concurrency=1 if concurrency is None else concurrency,
            expected_instances=1 if expected is None else expected,
            source=rel,
        )
    available = ", ".join(known) or "none"
    raise HandlerLoadError(
        file, "handlers", f"no python handler named {name!r} (available: {available})"
    )


def load_card_handler(card_path: str | Path) -> CardHandler:
    """Read ``agent-card.json``, validate it and import ``runtime.handler`` (relative to it).

    The symbol is ``runtime.handlerExport`` (default ``handler``). Raises HandlerLoadError
    naming the card file and the field.
    """
    file = Path(card_path)
    card = _read_json(file)
    try:
        validated = validate_agent_card(card)
    except AgentCardError as exc:
        raise HandlerLoadError(file, exc.path, exc.reason) from None
    runtime = validated.runtime
    if runtime is None:
        raise HandlerLoadError(file, "runtime.handler", "required: the handler file to run")
    handler_file = (file.parent / runtime.handler).resolve()
    if not handler_file.is_file():
        raise HandlerLoadError(
            file, "runtime.handler", f"file not found: {runtime.handler} (relative to the card)"
        )
    module = _import_file(handler_file, file, "runtime.handler")
    export = runtime.handler_export or _DEFAULT_EXPORT
    handler = _symbol(module, export, file, "runtime.handlerExport", runtime.handler)
    assert isinstance(card, dict)  # validate_agent_card accepted it
    tags = card.get("tags")
    return CardHandler(
        card=card,
        agent_name=validated.agent_name,
        handler=handler,
        handler_file=str(handler_file),
        concurrency=1 if runtime.concurrency is None else runtime.concurrency,
        expected_instances=1 if runtime.expected_instances is None else runtime.expected_instances,
        max_pending_backlog=runtime.max_pending_backlog,
        max_running_time_sec=runtime.max_running_time_sec,
        description=validated.description or None,
        tags=list(tags) if isinstance(tags, list) else [],
    )
