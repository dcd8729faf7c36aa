"""200 open consumer sessions, sharing subscribe polls, while the network is SIGKILLed and
restarted 20 s later on the same port and data; some sessions close during the outage and
new sessions join those tasks after it: each session follows its channel from its cursor
across the outage, hears its terminal exactly once, and its connection is released when it
closes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.conftest import AgentFactory
from tests.faults.consumer import Consumer
from tests.faults.harness import Devnet, SleeperAgent
from tests.support.task_rpc import wait_until

SESSIONS = 200
#: Sessions closed while the network is down, and how many of their tasks are joined again.
LEAVING = 30
REJOINED = 15
#: Long enough that every handler still runs when the network dies.
HANDLER_S = 6
OUTAGE_S = 20.0
CLOSE_TIMEOUT_S = 10.0
#: Each sleeper task's events, in the order its session must see them, once each.
HISTORY = ["request", "progress", "artifact", "terminal"]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
def test_open_sessions_hear_each_terminal_once_across_a_restart_and_release_their_sockets(
    devnet: Devnet, agents: AgentFactory, tmp_path: Path
) -> None:
    sleeper = SleeperAgent.write(tmp_path / "wide", "wide", concurrency=SESSIONS)
    agents("wide", cwd=sleeper.folder)
    baseline = _open_fds()
    consumer = Consumer(devnet)
    try:
        sessions = [consumer.send(sleeper.name, str(HANDLER_S)) for _ in range(SESSIONS)]
        wait_until(lambda: len(sleeper.runs()) == SESSIONS, 30, "every handler to start")
        groups = consumer.client._realtime.poll_groups
        # The owner's read tokens read each other's channels: the sessions share polls.
        assert sum(groups.channel_counts) == SESSIONS and len(groups.channel_counts) <= 2

        devnet.kill(signal.SIGKILL)
        for session in sessions[:LEAVING]:  # leave the shared polls while they fail
            session.close()
        time.sleep(OUTAGE_S)  # the outage under test: the sessions keep polling
        devnet.restart()
        # Join again, each from its history's end, while the shared polls reconnect.
        rejoined = [consumer.client.connect(task_id=s.task_id) for s in sessions[:REJOINED]]
        sessions = sessions[LEAVING:] + rejoined
        task_ids = [s.task_id for s in sessions]
        for session in rejoined:
            consumer.sessions[session.task_id] = session

        consumer.wait_all_terminal(task_ids)
        # Seen by the sessions themselves, across the outage: the whole history (the
        # request, "running", the result, the terminal) in order, none missed or twice.
        seen = {s.task_id: [e.type for e in s.events] for s in sessions}
        wrong = {tid: types for tid, types in seen.items() if types != HISTORY}
        assert not wrong, f"{len(wrong)} sessions saw a wrong history: {list(wrong.items())[:3]}"
        consumer.assert_exactly_once(task_ids, agent=sleeper)

        realtime = consumer.client._realtime
        polls = realtime.polls[1].transport.pool
        for session in sessions:
            session.close()
        wait_until(lambda: polls.checked_out == 0, CLOSE_TIMEOUT_S, "every poll's connection back")
        # What stays open is kept-alive idle connections, bounded by the pools.
        origin = ("http", "127.0.0.1", devnet.port)
        idle = polls.idle_count(origin) + realtime.http.transport.pool.idle_count(origin)
        loop_fds = 3  # the poll loop's selector and its wake-up socket pair
        assert _open_fds() <= baseline + idle + loop_fds, (_open_fds(), baseline, idle)
    finally:
        consumer.close()
    wait_until(lambda: _open_fds() <= baseline, CLOSE_TIMEOUT_S, "the consumer's fds to close")
