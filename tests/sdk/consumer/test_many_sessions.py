"""Many open sessions share one poll loop and, as the owner's read tokens read all its task
channels, one poll: threads and connections stay flat, no session misses an event."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import TaskClient, text_part
from blocks_network.consumer.task_session import TaskSession
from blocks_network.transport import poll_groups
from blocks_network.transport.poll_loop import WORKER_THREADS
from tests.sdk.consumer.responder import Responder, echo, silent

WAIT = 30.0
SESSIONS = 100
#: The poll loop's thread plus its workers, which read answers as they arrive; a thread per
#: session would be SESSIONS.
MAX_POLL_THREADS = 1 + WORKER_THREADS


@pytest.fixture
def agent(network: LocalNetwork) -> Iterator[Responder]:
    """The echo responder, with room for every session's task at once."""
    responder = Responder(network, "echo", concurrency=2 * SESSIONS)
    yield responder
    responder.stop()
    assert not responder.errors, responder.errors


def _poll_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("blocks-session-poll"))


def _wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_open_sessions_hold_a_few_threads_and_a_newcomer_misses_no_event(
    client: TaskClient, agent: Responder
) -> None:
    agent.handler = silent
    sessions: list[TaskSession] = [
        client.send_message(agent_name="echo", request_parts=[text_part(f"s{i}")])
        for i in range(SESSIONS)
    ]
    loop = client._realtime._loop
    groups = client._realtime.poll_groups
    _wait_for(
        lambda: loop.watched == 1 and groups.channel_counts == [SESSIONS],
        "every session's channel to be in the one poll waiting in the loop",
    )
    assert _poll_threads() <= MAX_POLL_THREADS
    # Their events still arrive: each agent's "running" reaches its session.
    _wait_for(lambda: all(s.state == "running" for s in sessions), "every task to run")
    assert _poll_threads() <= MAX_POLL_THREADS and loop.watched == 1

    # A new task answered at once joins while the others wait: it sees its whole history.
    agent.handler = echo
    with client.send_message(agent_name="echo", request_parts=[text_part("new")]) as newcomer:
        assert newcomer.wait_for_terminal(timeout=WAIT).state == "completed"
        assert [e.type for e in newcomer.events] == ["request", "progress", "artifact", "terminal"]

    for session in sessions:
        agent.agent.finish(agent.tasks[session.task_id], "completed")
    for session in sessions:
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        assert [e.type for e in session.events] == ["request", "progress", "terminal"]
    # Finished sessions leave the loop by themselves.
    _wait_for(lambda: loop.watched == 0, "the finished sessions' polls to end")
    assert _poll_threads() <= MAX_POLL_THREADS
    for session in sessions:
        session.close()


def test_destroying_the_client_with_sessions_waiting_ends_their_polls_and_threads(
    client: TaskClient, agent: Responder
) -> None:
    agent.handler = silent
    sessions = [
        client.send_message(agent_name="echo", request_parts=[text_part(f"s{i}")])
        for i in range(SESSIONS)
    ]
    loop = client._realtime._loop
    pool = client._realtime.polls[1].transport.pool
    groups = client._realtime.poll_groups
    _wait_for(
        lambda: loop.watched == 1 and groups.channel_counts == [SESSIONS],
        "every session's channel to be in the one poll waiting in the loop",
    )
    assert pool.checked_out == 1

    client.destroy()  # the sessions were never closed
    # Nothing is left to join later: the loop, its workers and every poll's connection end
    # within destroy() itself.
    assert _poll_threads() == 0
    assert pool.checked_out == 0 and loop.watched == 0
    for session in sessions:
        session.close()


def test_sessions_draining_their_streams_do_not_hold_up_the_others(
    client: TaskClient, agent: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent.handler = silent
    draining = [
        client.send_message(agent_name="echo", request_parts=[text_part(f"d{i}")])
        for i in range(WORKER_THREADS)
    ]
    other = client.send_message(agent_name="echo", request_parts=[text_part("other")])
    release = threading.Event()
    drained = threading.Semaphore(0)

    def slow_drain(window_s: float) -> None:
        drained.release()
        release.wait(2 * WAIT)  # a stream still open after the terminal: up to the window

    for session in draining:
        monkeypatch.setattr(session._streams, "has_open_streams", lambda: True)
        monkeypatch.setattr(session._streams, "drain", slow_drain)
    try:
        _wait_for(lambda: all(s.state == "running" for s in [*draining, other]), "every task")
        for session in draining:
            agent.agent.finish(agent.tasks[session.task_id], "completed")
        for _ in draining:  # as many drains waiting as the loop has workers
            assert drained.acquire(timeout=WAIT)
        agent.agent.finish(agent.tasks[other.task_id], "completed")
        # Delivered while every drain still waits: they do not sit on the loop's workers.
        assert other.wait_for_terminal(timeout=WAIT / 2).state == "completed"
        assert not release.is_set()
    finally:
        release.set()
    for session in [*draining, other]:
        session.close()


def test_sessions_fill_polls_up_to_the_url_cap_and_each_hears_each_event_once(
    make_client: Callable[..., TaskClient],
    agent: Responder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cap of a few dozen task channels per poll, so a few polls carry the sessions.
    monkeypatch.setattr(poll_groups, "MAX_TARGET_BYTES", 2500)
    heard: dict[str, list[int | None]] = {}
    receive = TaskSession._receive

    def counting(session: TaskSession, message: object, tt: int | None, *rest: Any) -> None:
        heard.setdefault(session.task_id, []).append(tt)
        receive(session, message, tt, *rest)

    monkeypatch.setattr(TaskSession, "_receive", counting)
    client = make_client()
    agent.handler = silent
    sessions = [
        client.send_message(agent_name="echo", request_parts=[text_part(f"s{i}")])
        for i in range(SESSIONS)
    ]
    groups = client._realtime.poll_groups
    pool = client._realtime.polls[1].transport.pool
    _wait_for(lambda: all(s.state == "running" for s in sessions), "every task to run")
    counts = groups.channel_counts
    assert sum(counts) == SESSIONS and len(counts) == math.ceil(SESSIONS / max(counts)) > 1
    _wait_for(lambda: pool.checked_out == len(counts), "one connection per poll")

    for session in sessions:
        agent.agent.finish(agent.tasks[session.task_id], "completed")
    for session in sessions:
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        assert [e.type for e in session.events] == ["request", "progress", "terminal"]
        delivered = heard[session.task_id]
        assert len(delivered) == 3 and len(set(delivered)) == 3, delivered
    _wait_for(lambda: pool.checked_out == 0, "the finished sessions' polls to end")
    for session in sessions:
        session.close()
