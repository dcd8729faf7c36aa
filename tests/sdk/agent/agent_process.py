"""``blocks-run`` as a child process, with its output read line by line."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

WAIT_S = 20.0


class AgentProcess:
    """Runs ``python -m blocks_network.cli.run_agent ARGS`` in ``cwd`` with exactly ``env``."""

    def __init__(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "blocks_network.cli.run_agent", *args],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, True), name="test-stdout"),
            threading.Thread(target=self._pump, args=(self.proc.stderr, False), name="test-stderr"),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream: object, is_stdout: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            line = line.rstrip("\n")
            if is_stdout:
                self.lines.append(line)
                self.stdout.put(line)
            else:
                self.stderr_lines.append(line)

    def wait_line(self, needle: str, timeout: float = WAIT_S) -> str:
        """The first stdout line containing ``needle``; fails with the output on timeout."""
        while True:
            try:
                line = self.stdout.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line with {needle!r}; stdout={self.lines} stderr={self.stderr_lines}"
                ) from None
            if needle in line:
                return line

    def signal(self, signum: int = signal.SIGINT) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float = WAIT_S) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


def run_to_exit(args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run to completion; ``(exit code, stdout, stderr)``."""
    done = subprocess.run(
        [sys.executable, "-m", "blocks_network.cli.run_agent", *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any Blocks or agent variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BLOCKS_")
        and k not in ("LOG_LEVEL", "LOG_FORMAT", "AGENT_SHUTDOWN_GRACE_SEC")
    }
    env.update(extra)
    return env


def write_card_project(folder: Path, handler_source: str, **runtime: Any) -> None:
    card = {
        "identity": {
            "agentName": "card_agent",
            "displayName": "Card agent",
            "description": "Runs from its card.",
            "version": "1.0.0",
            "provider": {"organization": "tests"},
        },
        "capabilities": {"taskKinds": ["request"]},
        "runtime": {"handler": "agent/handler.py", "handlerExport": "run", **runtime},
    }
    (folder / "agent").mkdir(parents=True, exist_ok=True)
    (folder / "agent-card.json").write_text(json.dumps(card))
    (folder / "agent" / "handler.py").write_text(textwrap.dedent(handler_source))
