"""A Ctrl+C while a command is still starting (importing) prints one line and exits 130.

Real processes get a real SIGINT: right after they start, and 0/10/30 ms after
``-X importtime`` shows ``blocks_network._version`` imported (the entry point's ``try`` has
begun; the command's own modules are still loading). The network is a listening socket
that never answers, so a late signal finds the command waiting for its config and the
command's own Ctrl+C handling answers (also one line, 130).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_network.cli.exit_codes import EXIT_INTERRUPTED

TIMEOUT_S = 60.0
#: Imported inside the entry point's ``try`` (before the fix: while importing the package).
ANCHOR = "blocks_network._version"
DELAYS_S = (0.0, 0.01, 0.03)
_BIN = Path(sys.executable).parent

COMMANDS = {
    "blocks-run": [str(_BIN / "blocks-run")],
    "blocks": [str(_BIN / "blocks"), "tasks", "list"],
    "python -m blocks_network": [sys.executable, "-m", "blocks_network"],
    "python -m blocks_devnet": [sys.executable, "-m", "blocks_devnet", "tasks", "list"],
}


@pytest.fixture
def silent_network() -> Iterator[str]:
    """A config URL whose server accepts connections (the kernel's backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/config.json"


def _env(cdm_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKS_")}
    return {**env, "BLOCKS_CDM_URL": cdm_url, "BLOCKS_API_KEY": "bk_test", **extra}


def _own_lines(stderr: str) -> list[str]:
    """stderr without ``-X importtime``'s lines."""
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


def _interrupt_after_anchor(
    argv: list[str], env: dict[str, str], cwd: Path, delay: float
) -> tuple[int, str]:
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    collected: list[str] = []

    def drain() -> None:  # importtime writes hundreds of lines: never let the pipe fill
        assert proc.stderr is not None
        for line in proc.stderr:
            collected.append(line)
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        while True:
            line = lines.get(timeout=TIMEOUT_S)
            assert line, f"exited before importing {ANCHOR}: {''.join(collected)}"
            if line.rstrip().rpartition("|")[2].strip() == ANCHOR:
                break
        if delay:
            time.sleep(delay)  # not a wait for a condition: the signal lands this much later
        proc.send_signal(signal.SIGINT)
        code = proc.wait(TIMEOUT_S)
    finally:
        proc.kill()
        proc.wait(TIMEOUT_S)
    reader.join(TIMEOUT_S)
    return code, "".join(collected)


@pytest.mark.parametrize("command", COMMANDS)
def test_ctrl_c_while_importing_prints_one_line_and_exits_130(
    command: str, silent_network: str, tmp_path: Path
) -> None:
    env = _env(silent_network, PYTHONPROFILEIMPORTTIME="1")
    for delay in DELAYS_S:
        code, err = _interrupt_after_anchor(COMMANDS[command], env, tmp_path, delay)
        assert "Traceback" not in err, (delay, err)
        assert code == EXIT_INTERRUPTED, (delay, code, err)
        own = _own_lines(err)
        assert own and "interrupted" in own[-1], (delay, own)
        # The early Ctrl+C says one line; a later one may follow blocks-run's start-up lines.
        assert [line for line in own if "interrupted" in line] == own[-1:], (delay, own)


@pytest.mark.parametrize("command", COMMANDS)
def test_ctrl_c_right_after_start_prints_no_traceback(
    command: str, silent_network: str, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        COMMANDS[command],
        env=_env(silent_network),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert "Traceback" not in err, err
    # Before Python installs its handler the signal ends the process (a shell shows 130).
    assert proc.returncode in (EXIT_INTERRUPTED, -signal.SIGINT), (proc.returncode, err)
