"""An instance with an ``async def`` handler SIGKILLed with 50 tasks running: each of them
ends exactly once, failed with the dead instance's reason; tasks it was never handed are
dispatched to the instance started after it and complete there (docs/task-service.md,
"Safety net")."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.faults.conftest import AgentFactory
from tests.faults.consumer import Consumer
from tests.faults.harness import Devnet, SleeperAgent
from tests.support.task_rpc import wait_until

CONCURRENCY = 50
#: Sent after the first wave: they wait in the network's queue while the instance is full.
QUEUED = 10


@pytest.mark.timeout(180)
def test_an_async_instance_killed_with_every_slot_busy_ends_each_task_once(
    devnet: Devnet, agents: AgentFactory, consumer: Consumer, tmp_path: Path
) -> None:
    agent = SleeperAgent.write(
        tmp_path / "waiter", "waiter", concurrency=CONCURRENCY, asynchronous=True
    )
    victim = agents("waiter-1", cwd=agent.folder)
    running = [consumer.send(agent.name, "600").task_id for _ in range(CONCURRENCY)]
    wait_until(lambda: len(agent.runs()) == CONCURRENCY, 30, "every slot's handler to start")
    queued = [consumer.send(agent.name, "1").task_id for _ in range(QUEUED)]

    victim.signal(signal.SIGKILL)
    successor = agents("waiter-2", cwd=agent.folder)

    consumer.wait_all_terminal([*running, *queued])
    consumer.assert_exactly_once(running, state="failed", agent=agent)
    consumer.assert_exactly_once(queued, agent=agent)
    assert {pid for tid in running for pid in agent.pids_of(tid)} == {victim.pid}
    assert {pid for tid in queued for pid in agent.pids_of(tid)} == {successor.pid}
    reasons = {consumer.sessions[tid].wait_for_terminal(timeout=1).error for tid in running}
    assert all(reason and "went offline" in reason for reason in reasons), reasons
