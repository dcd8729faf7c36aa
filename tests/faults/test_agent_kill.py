"""One of two instances of an agent SIGKILLed: the network stops dispatching to it within
seconds and fails the task it was running, with a reason."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.faults.conftest import AgentFactory
from tests.faults.consumer import Consumer
from tests.faults.harness import Devnet, SleeperAgent
from tests.support.task_rpc import wait_until

#: How soon after the kill the network must treat the instance as gone.
DETECTION_S = 5.0
#: Sent at once after detection: more than the survivor's free slots, so a network that
#: still counts the dead instance as present hands it some.
LATER_TASKS = 4


@pytest.mark.timeout(240)
def test_a_killed_instance_gets_no_new_tasks_and_its_running_task_fails(
    devnet: Devnet, agents: AgentFactory, consumer: Consumer, tmp_path: Path
) -> None:
    pair = SleeperAgent.write(tmp_path / "pair", "pair", concurrency=2)
    instances = [agents(f"pair-{i}", cwd=pair.folder) for i in (1, 2)]
    running = consumer.send(pair.name, "120")
    victim_pid = wait_until(lambda: pair.pids_of(running.task_id), 30, "the long task to start")[0]
    victim = next(p for p in instances if p.pid == victim_pid)
    survivor = next(p for p in instances if p is not victim)

    victim.signal(signal.SIGKILL)
    time.sleep(DETECTION_S)  # the detection allowance under test
    later = [consumer.send(pair.name, "1").task_id for _ in range(LATER_TASKS)]

    consumer.wait_all_terminal([running.task_id, *later])
    ran_on = {task_id: pair.pids_of(task_id) for task_id in later}
    assert all(pids == [survivor.pid] for pids in ran_on.values()), (
        f"tasks sent after the kill ran on {ran_on}; survivor {survivor.pid}, dead {victim.pid}"
    )
    consumer.assert_exactly_once(later, agent=pair)
    consumer.assert_exactly_once([running.task_id], state="failed", agent=pair)
    terminal = running.wait_for_terminal(timeout=1)
    assert terminal.error or terminal.reason, f"no reason given: {terminal}"
