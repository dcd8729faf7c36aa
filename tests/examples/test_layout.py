"""Every example is complete: a README, a valid card that loads as ``blocks-run`` would load
it, and an entry in examples/README.md."""

from __future__ import annotations

import sys

import pytest

from blocks_network.handlers.loader import load_card_handler

from .conftest import EXAMPLES

FOLDERS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith("."))
AGENTS = [f for f in FOLDERS if (EXAMPLES / f / "agent-card.json").exists()]


def test_the_issue_s_examples_are_all_there() -> None:
    assert set(FOLDERS) == {
        "adder-card",
        "advanced-stream",
        "async-model-agent",
        "auth-consumer",
        "bidi-chat",
        "chat-agent",
        "connect-consumer",
        "echo",
        "echo-stream",
        "file-consumer",
        "lifecycle",
        "orchestrator",
        "request-consumer",
        "stock-sim",
        "stock-sim-consumer",
        "stream-consumer",
    }


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_example_has_a_readme_and_is_listed(folder: str) -> None:
    readme = EXAMPLES / folder / "README.md"
    assert readme.read_text().startswith(f"# {folder}\n")
    assert f"({folder}/)" in (EXAMPLES / "README.md").read_text()
    assert any((EXAMPLES / folder / f"{m}.py").exists() for m in ("agent", "consumer"))


@pytest.mark.parametrize("folder", AGENTS)
def test_each_card_loads_in_card_mode(folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Card mode puts the card's folder on sys.path: keep that inside the test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    loaded = load_card_handler(EXAMPLES / folder / "agent-card.json")
    assert callable(loaded.handler)
    assert loaded.handler.__name__ == "handler"
    assert loaded.handler_file.endswith(f"{folder}/agent.py")
