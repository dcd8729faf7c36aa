"""The network killed or stopped under load and started again on the same port and data:
acknowledged tasks end exactly once, handlers never run twice, and new work flows at once."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.consumer import Consumer
from tests.faults.harness import Devnet, SleeperAgent
from tests.support.task_rpc import wait_until

TASKS = 100
HANDLER_S = 2
#: A task sent right after a restart must complete this soon after the network serves.
PROBE_BUDGET_S = 10.0
#: After each of several quick restarts, as long for both probes together.
ROUND_PROBE_BUDGET_S = 20.0
RESTARTS = 5


@pytest.mark.parametrize(
    ("signum", "outage_s"),
    [
        pytest.param(signal.SIGKILL, 20.0, id="sigkill-20s", marks=pytest.mark.timeout(240)),
        pytest.param(signal.SIGTERM, 3.0, id="sigterm-3s", marks=pytest.mark.timeout(240)),
        pytest.param(
            signal.SIGKILL,
            60.0,
            id="sigkill-60s",
            marks=[pytest.mark.slow_fault, pytest.mark.timeout(300)],
        ),
    ],
)
def test_tasks_in_flight_end_exactly_once_across_a_network_restart(
    signum: int,
    outage_s: float,
    devnet: Devnet,
    sleeper_and_echo: SleeperAgent,
    consumer: Consumer,
) -> None:
    sleeper = sleeper_and_echo
    task_ids = [consumer.send(sleeper.name, str(HANDLER_S)).task_id for _ in range(TASKS)]
    wait_until(lambda: len(sleeper.runs()) >= sleeper.concurrency, 30, "the first wave of handlers")

    devnet.kill(signum)
    time.sleep(outage_s)  # the outage under test: agents and consumer keep running
    devnet.restart()
    consumer.probe("echo", deadline=time.monotonic() + PROBE_BUDGET_S)

    consumer.assert_none_gone(task_ids)
    consumer.wait_all_terminal(task_ids)
    consumer.assert_exactly_once(task_ids, agent=sleeper)
    twice = {task_id: n for task_id, n in sleeper.run_counts().items() if n > 1}
    assert not twice, f"handlers started more than once: {twice}"


@pytest.mark.timeout(240)
def test_agents_take_tasks_after_each_of_five_restarts(
    devnet: Devnet,
    sleeper_and_echo: SleeperAgent,
    consumer: Consumer,
) -> None:
    def probe_both() -> None:
        deadline = time.monotonic() + ROUND_PROBE_BUDGET_S
        for agent in ("echo", sleeper_and_echo.name):
            consumer.probe(agent, deadline=deadline)

    probe_both()  # both serve before any fault
    for round_ in range(RESTARTS):
        devnet.kill(signal.SIGKILL if round_ % 2 == 0 else signal.SIGTERM)
        devnet.restart()
        probe_both()
