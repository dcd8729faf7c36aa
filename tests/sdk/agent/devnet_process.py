"""``blocks devnet`` as a child process that can be killed and restarted on its port and
data directory (what an operator's crash and restart look like to agents and consumers)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class DevnetProcess:
    """``python -m blocks_devnet devnet --port PORT --data-dir DIR``; stderr goes to
    ``log`` (appended, so a restart keeps the first run's lines)."""

    def __init__(self, port: int, data_dir: Path, log: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.log = log
        self.env: dict[str, str] = {}
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    def start(self) -> dict[str, str]:
        """Start and wait until it serves; returns ``BLOCKS_CDM_URL`` and ``BLOCKS_API_KEY``."""
        with self.log.open("a") as log:
            self._proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "blocks_devnet", "devnet"),
                    *("--port", str(self.port), "--data-dir", str(self.data_dir)),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="test-devnet-out", daemon=True)
        self._reader.start()
        found: dict[str, str] = {}
        while len(found) < 2:
            try:
                line = self._lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"blocks devnet did not start; see {self.log}") from None
            if line is None:
                raise AssertionError(f"blocks devnet exited early; see {self.log}")
            key, sep, value = line.partition("=")
            if sep and key in ("BLOCKS_CDM_URL", "BLOCKS_API_KEY"):
                found[key] = value
        self.env = found
        return found

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Send ``signum`` and wait for the process to exit."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signum)
        proc.wait(STOP_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)

    def close(self) -> None:
        self.kill()
