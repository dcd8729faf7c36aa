"""Concurrency limits, the backend's backlog, and at-capacity answers (protocol §3.4.1)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from blocks_network.consumer import TaskClient, text_part
from blocks_network.errors import RpcError
from blocks_network.types import StartTaskMessage, TaskContext
from tests.sdk.agent.conftest import AgentFactory
from tests.sdk.agent.raw_control import RawControl, next_event

WAIT_S = 10.0


class Gate:
    """Counts concurrent handlers; each waits for ``release``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.seen: list[str] = []
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def __call__(self, task: StartTaskMessage, ctx: TaskContext) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.seen.append(task.task_id)
        self.entered.release()
        try:
            assert self.release.wait(WAIT_S)
        finally:
            with self.lock:
                self.running -= 1

    def wait_entered(self, count: int) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=WAIT_S)


def test_concurrency_limits_parallel_handlers_and_the_backlog_drains(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    gate = Gate()
    start_agent(agent_name="gated", handler=gate, concurrency=2)
    sessions = [consumer.send_message("gated", [text_part(str(i))]) for i in range(5)]
    try:
        gate.wait_entered(2)
        queued = [s for s in sessions if s.task_id not in gate.seen]
        assert len(queued) == 3
        gate.release.set()
        states = [s.wait_for_terminal(timeout=WAIT_S).state for s in sessions]
    finally:
        for s in sessions:
            s.close()
    assert states == ["completed"] * 5
    assert gate.peak == 2
    assert sorted(gate.seen) == sorted(s.task_id for s in sessions)


def test_a_full_backlog_refuses_new_tasks(start_agent: AgentFactory, consumer: TaskClient) -> None:
    gate = Gate()
    start_agent(agent_name="gated", handler=gate, concurrency=1, max_pending_backlog=1)
    first = consumer.send_message("gated", [text_part("1")])
    second = consumer.send_message("gated", [text_part("2")])
    try:
        gate.wait_entered(1)
        with pytest.raises(RpcError) as info:
            consumer.send_message("gated", [text_part("3")])
        assert "backlog" in str(info.value)
        gate.release.set()
        assert first.wait_for_terminal(timeout=WAIT_S).state == "completed"
        assert second.wait_for_terminal(timeout=WAIT_S).state == "completed"
    finally:
        first.close()
        second.close()


def test_targeted_start_at_capacity_is_refused_broadcast_is_skipped(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    gate = Gate()
    handle = start_agent(agent_name="gated", handler=gate, concurrency=1)
    raw: RawControl = raw_control(handle)
    _, busy = raw.start_task()
    gate.wait_entered(1)
    refused_id, refused = raw.start_task()
    skipped_id, skipped = raw.start_task(broadcast=True)
    # Control messages are handled in order: once this later one is refused too, the
    # broadcast before it was handled while the instance was still busy.
    marker_id, marker = raw.start_task()
    assert refused is not None and skipped is not None and busy is not None and marker is not None
    for watch in (refused, marker):
        terminal = next_event(watch, "terminal")
        assert (terminal["state"], terminal["error"]) == ("failed", "agent_at_capacity")
    gate.release.set()
    assert next_event(busy, "terminal")["state"] == "completed"
    assert skipped.messages.empty(), [m.message for m in list(skipped.messages.queue)]
    assert not {refused_id, skipped_id, marker_id} & set(gate.seen)


def test_unlimited_concurrency_runs_everything_at_once(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    gate = Gate()
    handle = start_agent(agent_name="gated", handler=gate, concurrency=0)
    raw: RawControl = raw_control(handle)
    watches = [raw.start_task()[1] for _ in range(6)]
    gate.wait_entered(6)
    assert gate.peak == 6
    gate.release.set()
    for watch in watches:
        assert watch is not None and next_event(watch, "terminal")["state"] == "completed"


def test_sequential_tasks_far_from_capacity_skip_the_presence_update_before_each_terminal(
    start_agent: AgentFactory, consumer: TaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slot freed far from capacity is announced in the background: the backend still
    # dispatches every next task at once (no task waits for the 2 s cooling grace).
    from blocks_network.agent.realtime_http import RealtimeHttp

    sent: list[dict[str, Any]] = []
    original = RealtimeHttp.set_state

    def counting(self: RealtimeHttp, *args: Any, **kwargs: Any) -> bool:
        sent.append(args[2])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RealtimeHttp, "set_state", counting)
    start_agent(agent_name="quick", handler=lambda task, ctx: None, concurrency=8)
    sent.clear()
    slowest = 0.0
    for i in range(24):
        started = time.monotonic()
        with consumer.send_message("quick", [text_part(str(i))]) as session:
            assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 1.5
    assert len(sent) < 24  # one background update covers many ends
