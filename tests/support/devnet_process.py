"""``blocks devnet`` as a child process (``python -m blocks_devnet devnet ...``), with its
stdout read line by line, for tests that start, signal and kill it."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def blocks(*args: str) -> list[str]:
    return [sys.executable, "-m", "blocks_devnet", *args]


class Devnet:
    """A ``blocks devnet`` subprocess whose stdout lines arrive on a queue."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            blocks("devnet", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="test-devnet-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def ready_lines(
        self, keys: tuple[str, ...] = ("BLOCKS_CDM_URL", "BLOCKS_API_KEY")
    ) -> dict[str, str]:
        """Wait for the env lines ``keys`` on stdout (the process announces it serves)."""
        found: dict[str, str] = {}
        while len(found) < len(keys):
            try:
                line = self.lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                pytest.fail("blocks devnet printed no ready lines in time")
            if line is None:
                pytest.fail(f"blocks devnet exited early: {self.process.wait(5)} {self.stderr()}")
            key, sep, value = line.partition("=")
            if sep and key in keys:
                found[key] = value
        return found

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read() if self.process.poll() is not None else ""

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._reader.join(STOP_TIMEOUT)
