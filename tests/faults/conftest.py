"""Fixtures of the fault tests: a restartable ``blocks devnet`` subprocess, ``blocks-run``
agents and an SDK consumer, all torn down (killed) after the test; on failure the report
shows the tail of every process log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.faults.consumer import Consumer
from tests.faults.harness import Devnet, LoggedProcess, SleeperAgent, start_agent

_PROCESSES = pytest.StashKey[list[LoggedProcess]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow_fault: the one long-outage fault test (runs in the default suite)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for process in item.stash.get(_PROCESSES, []):
            report.sections.append((f"log tail: {process.name} ({process.log})", process.tail()))


@pytest.fixture(autouse=True)
def _quiet_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    """Every session logs each failed reconnect during an outage; the process logs say more."""
    caplog.set_level(logging.ERROR, logger="blocks_network.transport")


@pytest.fixture
def devnet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Devnet]:
    """A running ``blocks devnet`` on a fixed free port with its data in ``tmp_path``."""
    net = Devnet(tmp_path / "devnet")
    # The same list grows with every (re)start and agent; the report reads it on failure.
    request.node.stash[_PROCESSES] = net.processes
    try:
        net.start()
        yield net
    finally:
        net.close()


AgentFactory = Callable[..., LoggedProcess]


@pytest.fixture
def agents(request: pytest.FixtureRequest, devnet: Devnet, tmp_path: Path) -> AgentFactory:
    """``agents(name, args=[...], cwd=folder)`` starts ``blocks-run`` and waits until ready
    (killed with the devnet's processes)."""

    def start(name: str, args: list[str] | None = None, cwd: Path | None = None) -> LoggedProcess:
        agent = start_agent(
            name, args or [], cwd=cwd or tmp_path, devnet=devnet, logs=tmp_path / "logs"
        )
        devnet.processes.append(agent)
        return agent

    return start


@pytest.fixture
def echo_agent(agents: AgentFactory) -> LoggedProcess:
    """The built-in echo (``blocks-run --handler echo``)."""
    return agents("echo-agent", ["--handler", "echo"])


@pytest.fixture
def sleeper(tmp_path: Path) -> SleeperAgent:
    """A card-mode agent folder ("sleeper", concurrency 20); start it with ``agents``."""
    return SleeperAgent.write(tmp_path / "sleeper", "sleeper", concurrency=20)


@pytest.fixture
def sleeper_and_echo(
    agents: AgentFactory, sleeper: SleeperAgent, echo_agent: LoggedProcess
) -> SleeperAgent:
    """The sleeper running in card mode next to the built-in echo."""
    agents("sleeper", cwd=sleeper.folder)
    return sleeper


@pytest.fixture
def consumer(devnet: Devnet) -> Iterator[Consumer]:
    client = Consumer(devnet)
    yield client
    client.close()
