"""The README's commands, parsed from the README itself and run exactly as printed.

- The opening block must be ``make demo`` and ``make test``; ``make demo`` is run when the
  virtualenv is up to date (CI: ``make test`` built it; locally ``make setup`` does).
- "Quickstart by hand": the three terminals' blocks run as three shells in a scratch
  directory, with ``.venv/bin`` first on PATH (the README says to activate it) and
  ``BLOCKS_DEVNET_PORT=0`` so the fixed default port cannot collide with another network.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.DOTALL)


def commands(block: str) -> list[str]:
    """The block's command lines, without comments."""
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_readme_opens_with_make_demo_and_make_test() -> None:
    text = README.read_text()
    first = bash_blocks(text)[0]
    assert text.index(first) < text.index("\n## ")  # before any section
    assert commands(first) == ["make demo", "make test"]


def test_make_demo_as_printed() -> None:
    venv_ready = subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT, check=False)
    if venv_ready.returncode != 0:
        pytest.skip("the virtualenv stamp is stale or missing: `make setup` first (CI has it)")
    result = subprocess.run(
        ["bash", "-c", commands(bash_blocks(README.read_text())[0])[0]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Echoed request: Hello from the demo" in result.stdout


class Terminal:
    """One terminal of the quickstart: a bash running a README block, stdout on a queue."""

    def __init__(self, block: str, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "-c", block],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group: Ctrl+C reaches bash and its child
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, needle: str) -> None:
        while True:
            try:
                line = self.lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                pytest.fail(f"no {needle!r} in time; output so far: {self.seen}")
            if line is None:
                pytest.fail(f"exited before {needle!r}: {self.seen}")
            self.seen.append(line)
            if needle in line:
                return

    def interrupt(self) -> int:
        """Ctrl+C, as a user would press it; returns the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self._reader.join(STOP_TIMEOUT_S)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for terminal in reversed(started):
        terminal.interrupt()


def test_quickstart_by_hand_as_printed(terminals: list[Terminal], tmp_path: Path) -> None:
    manual = section(README.read_text(), "Quickstart by hand")
    network, agent, task = bash_blocks(manual)[:3]
    assert commands(network) == ["blocks devnet --env-file .blocks/devnet.env"]
    assert commands(agent)[-1] == "blocks-run --handler echo"
    assert commands(task)[-1] == 'blocks send echo "hello"'

    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["BLOCKS_DEVNET_PORT"] = "0"
    env["PYTHONUNBUFFERED"] = "1"

    terminals.append(Terminal(network, tmp_path, env))
    terminals[0].wait_for("# export these lines")
    terminals.append(Terminal(agent, tmp_path, env))
    terminals[1].wait_for("running (press Ctrl+C to stop)")

    sent = subprocess.run(
        ["bash", "-c", task],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == "Echoed request: hello\n"
    assert "It prints `Echoed request: hello`" in manual

    assert terminals[1].interrupt() == 0  # Ctrl+C in terminal 2, then terminal 1
    assert terminals[0].interrupt() == 0
    assert (tmp_path / ".blocks" / "devnet.env").read_text().startswith("BLOCKS_CDM_URL=")


def test_the_demo_points_to_the_same_manual_commands() -> None:
    manual = section(README.read_text(), "Quickstart by hand")
    from blocks_devnet.demo import NEXT_STEPS

    for block in bash_blocks(manual)[:3]:
        for line in commands(block):
            assert line in NEXT_STEPS


def test_versions_are_single_sourced_from_the_package_metadata() -> None:
    import subprocess
    import sys
    from importlib.metadata import version

    import blocks_devnet
    import blocks_network

    installed = version("blocks-network")
    assert blocks_network.__version__ == blocks_devnet.__version__ == installed
    for module, prog in (
        ("blocks_devnet", "blocks"),
        ("blocks_network", "blocks-run"),
    ):
        shown = subprocess.run(
            [sys.executable, "-m", module, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        assert shown == f"{prog} {installed}"
