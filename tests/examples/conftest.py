"""Fixtures for the examples' tests: the testing kit's network and agents, example loading.

Examples live in folders with hyphens (``examples/echo-stream``), so they are loaded from
their files by path, under private module names, without touching ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from blocks_network.handlers.loader import load_registry_handler
from blocks_network.testing import AgentRunner, RunningAgent
from tests.support.kit import _no_leaked_threads, blocks_network

__all__ = [
    "EXAMPLES",
    "_no_leaked_threads",
    "blocks_network",
    "card_of",
    "load",
    "start_agent",
    "start_builtin",
    "start_example",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: The local network's built-in agents (registered, never published by a test).
BUILT_IN = ("echo", "adder")


def load(folder: str, module: str = "agent") -> ModuleType:
    """Import ``examples/<folder>/<module>.py`` (once per test session)."""
    name = f"_blocks_example_{folder.replace('-', '_')}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / folder / f"{module}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def card_of(folder: str) -> dict[str, Any]:
    """The example's ``agent-card.json``."""
    card = json.loads((EXAMPLES / folder / "agent-card.json").read_text())
    assert isinstance(card, dict)
    return card


def start_example(
    run_agent: AgentRunner, folder: str, *, name: str | None = None, **options: Any
) -> RunningAgent:
    """Run an example agent as ``blocks-run`` would in its folder: its card, its handler,
    its ``runtime.concurrency``. The built-in names (echo, adder) are not published.
    ``name`` runs it under another agent name (a copy of the card with that name)."""
    card = card_of(folder)
    if name is not None:
        card["identity"]["agentName"] = name
    name = card["identity"]["agentName"]
    options.setdefault("publish", name not in BUILT_IN)
    options.setdefault("concurrency", card.get("runtime", {}).get("concurrency", 1))
    return run_agent(load(folder).handler, agent_name=name, card=card, **options)


def start_builtin(run_agent: AgentRunner, name: str) -> RunningAgent:
    """Run a built-in agent as ``blocks-run --handler NAME`` does (the packaged registry)."""
    assert name in BUILT_IN
    return run_agent(load_registry_handler(name).handler, agent_name=name, publish=False)


def start_agent(run_agent: AgentRunner, what: str) -> RunningAgent:
    """``--handler NAME``: a built-in as the README runs it; else an example's folder."""
    if what.startswith("--handler "):
        return start_builtin(run_agent, what.removeprefix("--handler "))
    return start_example(run_agent, what)
