"""The pytest plugin as a user meets it: installed through the entry point, in a project
of their own (a subprocess pytest run of the example in docs/testing-kit.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "testing-kit.md"
RUN_TIMEOUT_S = 120.0


def doc_test_file() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    (code,) = [b for b in blocks if b.startswith("# test_my_agent.py\n")]
    return code


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("BLOCKS_", "PYTEST_"))}


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    """``pytest -q`` in ``project`` as a user runs it: a fresh process, no BLOCKS_* set,
    warnings as errors and none of our pyproject's ignores."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=clean_env(),
    )


def test_the_documented_example_passes_in_a_fresh_project(tmp_path: Path) -> None:
    (tmp_path / "test_my_agent.py").write_text(doc_test_file())
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "warning" not in result.stdout, result.stdout


def test_the_plugin_can_be_disabled(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(blocks_network):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:blocks_network", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=clean_env(),
    )
    assert result.returncode == 1
    assert "fixture 'blocks_network' not found" in result.stdout


def test_importing_the_plugin_loads_no_network_code() -> None:
    code = (
        "import sys, blocks_network.testing.plugin as p, blocks_network.testing as t\n"
        "heavy = [m for m in ('blocks_devnet.network', 'aiohttp', 'blocks_network.testing.network')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert {'blocks_network', 'blocks_client', 'run_agent'} <= set(vars(p))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
