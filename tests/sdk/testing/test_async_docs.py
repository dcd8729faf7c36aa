"""The async examples of docs/async.md and docs/testing-kit.md run as a user runs them: the
fan-out test and run_agent with an async handler in a fresh project through the installed
plugin, the short example against a test network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blocks_network.handlers.echo import echo_handler
from blocks_network.testing import AgentRunner, BlocksTestNetwork
from tests.sdk.testing.test_plugin import run_pytest

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _block(first_line: str, doc: str = "async.md") -> str:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), re.DOTALL)
    (code,) = [b for b in blocks if b.startswith(first_line)]
    return code


def test_the_fan_out_of_1000_tasks_passes_in_a_fresh_project(tmp_path: Path) -> None:
    (tmp_path / "test_fan_out.py").write_text(_block("# test_fan_out.py\n"))
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_run_agent_runs_an_async_handler_from_sync_and_async_tests(tmp_path: Path) -> None:
    code = _block("# test_async_agent.py\n", doc="testing-kit.md")
    (tmp_path / "test_async_agent.py").write_text(code)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_short_example_runs_against_a_test_network(
    blocks_network: BlocksTestNetwork,
    run_agent: AgentRunner,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_agent(echo_handler, agent_name="echo", publish=False)
    for name, value in blocks_network.env.items():
        monkeypatch.setenv(name, value)
    # The block is a whole program (it runs its own asyncio.run), as a user pastes it.
    exec(_block("import asyncio\n\nfrom blocks_network import AsyncTaskClient"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == ["terminal completed", "b'Echoed request: hi'"]
