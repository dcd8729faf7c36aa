"""``python -m blocks_devnet.demo`` (what ``make demo`` runs) as a real process."""

from __future__ import annotations

import subprocess
import sys

DEMO_TIMEOUT_S = 30.0


def test_demo_runs_both_tasks_and_stops_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blocks_devnet.demo"],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "artifact (text/plain): Echoed request: Hello from the demo" in out
    assert 'artifact (application/json): {"ok": true, "a": 2, "b": 40, "sum": 42}' in out
    assert out.count(": completed in ") == 2
    assert "Stopped the agents and the network" in out
    assert "Where to look next" in out
    assert result.stderr == ""  # no warnings, no agent log lines, no traceback
