"""Real processes for fault tests: ``blocks devnet`` that can be killed and restarted on the
same port and data directory, and ``blocks-run`` agents (built-in or card mode).

Every process writes stdout and stderr to its own log file (one per start), so a failing
test can show the tail of each; every wait polls a condition until a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.task_rpc import wait_until

#: How long a process may take to print its ready line.
START_TIMEOUT_S = 30.0
#: How long a signalled process may take to exit (SIGTERM stops gracefully).
STOP_TIMEOUT_S = 20.0
#: How long a restart keeps trying to bind a port that lingers after a kill.
REBIND_TIMEOUT_S = 15.0
#: Polling step of every wait.
POLL_S = 0.05
#: Lines of each log shown when a test fails.
TAIL_LINES = 60

DEVNET_READY = "# export these lines"
AGENT_READY = "running (press Ctrl+C to stop)"


def free_port() -> int:
    """A loopback port free right now (the devnet keeps it across restarts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without Blocks or agent settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BLOCKS_", "AGENT_")) and k != "LOG_LEVEL"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class LoggedProcess:
    """A child process whose output goes to ``log``; killed by :meth:`close`."""

    def __init__(
        self, name: str, argv: list[str], *, log: Path, cwd: Path, env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_ready(self, needle: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the log has ``needle``; fail at once if the process exits first."""

        def ready() -> bool:
            if needle in self.output():
                return True
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before {needle!r}:\n"
                    f"{self.tail()}"
                )
            return False

        wait_until(ready, timeout, f"{self.name} to print {needle!r}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` and wait for the exit (SIGKILL if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
                raise AssertionError(
                    f"{self.name} did not exit within {STOP_TIMEOUT_S:.0f} s of "
                    f"{signal.Signals(signum).name}"
                ) from None

    def close(self) -> None:
        """Kill if still running (teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(STOP_TIMEOUT_S)


class Devnet:
    """``blocks devnet`` on a fixed port and data dir, killable and restartable."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.env_file = workdir / "devnet.env"
        self.starts = 0
        self.process: LoggedProcess | None = None
        self.processes: list[LoggedProcess] = []
        self.env: dict[str, str] = {}

    @property
    def origin(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.origin}"

    def start(self) -> None:
        """Start and wait until it serves; retries briefly while the port is still taken."""
        deadline = time.monotonic() + REBIND_TIMEOUT_S
        while True:
            self.starts += 1
            process = LoggedProcess(
                f"devnet#{self.starts}",
                [
                    sys.executable,
                    "-m",
                    "blocks_devnet",
                    "devnet",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--env-file",
                    str(self.env_file),
                ],
                log=self.workdir / "logs" / f"devnet-{self.starts}.log",
                cwd=self.workdir,
                env=clean_environ(),
            )
            self.processes.append(process)
            self.process = process
            try:
                process.wait_ready(DEVNET_READY)
                break
            except AssertionError:
                if "already in use" not in process.output() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        lines = self.env_file.read_text().splitlines()
        self.env = dict(line.split("=", 1) for line in lines if "=" in line)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        assert self.process is not None, "the devnet is not running"
        self.process.signal(signum)

    def restart(self) -> None:
        """Start again on the same port and data directory (the previous one must be dead)."""
        assert self.process is None or self.process.proc.poll() is not None
        self.start()

    def close(self) -> None:
        for process in self.processes:
            process.close()


def start_agent(
    name: str, args: list[str], *, cwd: Path, devnet: Devnet, logs: Path
) -> LoggedProcess:
    """``blocks-run ARGS`` in ``cwd`` against ``devnet``; returns once it takes tasks."""
    agent = LoggedProcess(
        name,
        [sys.executable, "-m", "blocks_network.cli.run_agent", *args],
        log=logs / f"{name}.log",
        cwd=cwd,
        env=clean_environ(**devnet.env),
    )
    try:
        agent.wait_ready(AGENT_READY)
    except BaseException:
        agent.close()
        raise
    return agent


# --- the sleeper agent (card mode) --------------------------------------------------------

SLEEPER_HANDLER = """
    import asyncio
    import os
    import time

    INVOCATIONS = {invocations!r}


    {kind}def handler(task, ctx):
        # One O_APPEND write per start: lines of concurrent instances never interleave.
        line = f"{{task.task_id}} {{os.getpid()}}\\n".encode()
        fd = os.open(INVOCATIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        text = next((p["text"] for p in task.request_parts if "text" in p), "0")
        {sleep}(float(text))
        return {{"artifacts": [{{"data": f"slept {{text}} s", "mimeType": "text/plain"}}]}}
"""


@dataclass(frozen=True)
class SleeperAgent:
    """A card-mode agent folder whose handler sleeps ``float(text)`` seconds and records
    ``task_id pid`` in ``invocations`` when it starts (``asynchronous``: an ``async def``
    handler awaiting ``asyncio.sleep``)."""

    name: str
    folder: Path
    invocations: Path
    concurrency: int

    @classmethod
    def write(
        cls, folder: Path, name: str, *, concurrency: int, asynchronous: bool = False
    ) -> SleeperAgent:
        invocations = folder / "invocations.txt"
        card = {
            "identity": {
                "agentName": name,
                "displayName": "Sleeper",
                "description": "Sleeps as many seconds as the text says.",
                "version": "1.0.0",
                "provider": {"organization": "fault tests"},
            },
            "capabilities": {"taskKinds": ["request"]},
            "runtime": {
                "handler": "agent.py",
                "handlerExport": "handler",
                "concurrency": concurrency,
                "maxPendingBacklog": 1000,
            },
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "agent-card.json").write_text(json.dumps(card, indent=2))
        source = textwrap.dedent(SLEEPER_HANDLER).format(
            invocations=str(invocations),
            kind="async " if asynchronous else "",
            sleep="await asyncio.sleep" if asynchronous else "time.sleep",
        )
        (folder / "agent.py").write_text(source)
        return cls(name, folder, invocations, concurrency)

    def runs(self) -> list[tuple[str, int]]:
        """``(task_id, pid)`` of every handler start so far, in order."""
        if not self.invocations.exists():
            return []
        pairs = (line.split() for line in self.invocations.read_text().splitlines() if line)
        return [(task_id, int(pid)) for task_id, pid in pairs]

    def run_counts(self) -> Counter[str]:
        return Counter(task_id for task_id, _pid in self.runs())

    def pids_of(self, task_id: str) -> list[int]:
        return [pid for tid, pid in self.runs() if tid == task_id]
