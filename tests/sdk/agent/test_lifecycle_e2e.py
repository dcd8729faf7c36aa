"""Cancel, terminate, pause/resume, expire and pipe tasks against a real local network."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import pytest

from blocks_network.consumer import TaskClient, text_part
from blocks_network.types import StartTaskMessage, TaskContext
from tests.sdk.agent.conftest import AgentFactory
from tests.sdk.agent.raw_control import RawControl, events_until_terminal, next_event

WAIT_S = 10.0


class Blocking:
    """A handler that signals it started, then waits for cancellation (or a release)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.contexts: list[TaskContext] = []

    def __call__(self, task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        self.contexts.append(ctx)
        self.started.set()
        deadline = time.monotonic() + WAIT_S
        while not ctx.is_cancelled and not self.release.is_set() and time.monotonic() < deadline:
            ctx.cancel_event.wait(0.02)
        return {"artifacts": [{"data": "partial", "mimeType": "text/plain"}]}


def test_cancel_is_cooperative_and_ends_canceled(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    handler = Blocking()
    start_agent(agent_name="slow", handler=handler)
    with consumer.send_message("slow", [text_part("x")]) as session:
        assert handler.started.wait(WAIT_S)
        session.cancel()
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        types = [e.type for e in session.events]
    assert terminal.state == "canceled"
    assert terminal.data.get("reason") is None
    assert handler.contexts[0].is_cancelled and not handler.contexts[0].is_expired
    # The artifact the handler still returned is published before the terminal.
    assert types.index("cancel_requested") < types.index("artifact") < types.index("terminal")


def test_terminate_ends_canceled_with_reason(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    handler = Blocking()
    start_agent(agent_name="slow", handler=handler)
    with consumer.send_message("slow", [text_part("x")]) as session:
        assert handler.started.wait(WAIT_S)
        session.terminate()
        terminal = session.wait_for_terminal(timeout=WAIT_S)
    assert (terminal.state, terminal.data.get("reason")) == ("canceled", "terminated")
    assert handler.contexts[0].is_terminated


def test_pause_and_resume_announce_system_events(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    handler = Blocking()
    start_agent(agent_name="slow", handler=handler)
    statuses: list[str] = []
    resumed = threading.Event()

    def on_system(event: Any) -> None:
        statuses.append(event.data.get("status"))
        if event.data.get("status") == "resumed":
            resumed.set()

    with consumer.send_message("slow", [text_part("x")]) as session:
        session.on_system(on_system)
        assert handler.started.wait(WAIT_S)
        consumer.pause_task(session.task_id)
        consumer.resume_task(session.task_id)
        assert resumed.wait(WAIT_S)
        handler.release.set()
        assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
    assert statuses == ["paused", "resumed"]


def test_expire_task_completes_with_duration_expired(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    handler = Blocking()
    handle = start_agent(agent_name="piper", handler=handler)
    raw: RawControl = raw_control(handle)
    far = int(time.time() * 1000) + 3_600_000
    task_id, watch = raw.start_task(taskKind="pipe", duration=60, durationExpiresAtMs=far)
    assert watch is not None and handler.started.wait(WAIT_S)
    raw.publish({"type": "ExpireTask", "taskId": task_id, "agentName": "piper"})
    terminal = next_event(watch, "terminal")
    assert terminal["state"] == "completed"
    assert terminal["completionReason"] == "duration_expired"
    assert handler.contexts[0].is_expired


def test_pipe_deadline_timer_expires_the_task(start_agent: AgentFactory, raw_control: Any) -> None:
    handler = Blocking()
    handle = start_agent(agent_name="piper", handler=handler)
    raw: RawControl = raw_control(handle)
    soon = int(time.time() * 1000) + 300
    _, watch = raw.start_task(taskKind="pipe", duration=1, durationExpiresAtMs=soon)
    assert watch is not None
    terminal = next_event(watch, "terminal")
    assert (terminal["state"], terminal["completionReason"]) == ("completed", "duration_expired")


def test_pipe_returning_on_its_own_stays_open_until_publish_terminal(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    returned = threading.Event()

    def pipe(task: StartTaskMessage, ctx: TaskContext) -> None:
        assert task.is_pipe and task.duration == 5
        returned.set()

    handle = start_agent(agent_name="piper", handler=pipe)
    with consumer.send_message("piper", [text_part("x")], task_kind="pipe", duration=5) as session:
        assert returned.wait(WAIT_S)
        # No terminal follows a voluntary return: cancel-free pipes keep running.
        assert not session.is_terminal
        assert handle.publish_terminal(session.task_id, {"state": "completed"})
        terminal = session.wait_for_terminal(timeout=WAIT_S)
    assert terminal.state == "completed"
    # The credentials are gone once the terminal is out.
    assert not handle.publish_terminal(session.task_id, {"state": "completed"})


def test_cancel_after_a_pipe_returned_uses_the_cached_credentials(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    returned = threading.Event()
    start_agent(agent_name="piper", handler=lambda task, ctx: returned.set())
    with consumer.send_message("piper", [text_part("x")], task_kind="pipe", duration=5) as session:
        assert returned.wait(WAIT_S)
        session.cancel()
        assert session.wait_for_terminal(timeout=WAIT_S).state == "canceled"


def test_invalid_pipe_duration_is_refused(start_agent: AgentFactory, raw_control: Any) -> None:
    calls: list[str] = []
    handle = start_agent(agent_name="piper", handler=lambda task, ctx: calls.append(task.task_id))
    raw: RawControl = raw_control(handle)
    _, watch = raw.start_task(taskKind="pipe", duration=1.5, durationExpiresAtMs=123)
    assert watch is not None
    terminal = next_event(watch, "terminal")
    assert (terminal["state"], terminal["error"]) == ("failed", "invalid_start_task")
    assert calls == []


def test_unsupported_protocol_version_is_refused_when_targeted(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    calls: list[str] = []
    handle = start_agent(agent_name="piper", handler=lambda task, ctx: calls.append(task.task_id))
    raw: RawControl = raw_control(handle)
    _, watch = raw.start_task(protocolVersion="1999-01-01")
    assert watch is not None
    terminal = next_event(watch, "terminal")
    assert terminal["error"] == "unsupported_protocol_version"
    assert terminal["protocolVersion"] == "1999-01-01"
    assert calls == []


def test_duplicate_start_task_runs_the_handler_once(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    handler = Blocking()
    handle = start_agent(agent_name="slow", handler=handler, concurrency=2)
    raw: RawControl = raw_control(handle)
    task_id, watch = raw.start_task()
    assert watch is not None and handler.started.wait(WAIT_S)
    raw.start_task(task_id, watch=False)
    # A later task proves the duplicate was processed (control messages are handled in order).
    _, probe = raw.start_task()
    assert probe is not None
    next_event(probe, "progress")
    handler.release.set()
    assert next_event(probe, "terminal")["state"] == "completed"
    events = events_until_terminal(watch)
    assert [e["type"] for e in events] == ["progress", "artifact", "terminal"]
    assert [c.task_id for c in handler.contexts].count(task_id) == 1


def test_switch_environment_moves_the_instance_to_the_other_keyset(
    start_agent: AgentFactory, agent_env: Any
) -> None:
    from tests.sdk.agent.raw_control import RawControl as Raw

    handle = start_agent(agent_name="mover", handler=lambda task, ctx: None)
    playground = Raw(agent_env, "mover", handle.instance_id)
    network = Raw(agent_env, "mover", handle.instance_id, environment="network")
    try:
        # Ignored: no token, or the environment it is already on.
        playground.publish(
            {"type": "SwitchEnvironment", "environment": "playground", "pamToken": "x"}
        )
        playground.publish(
            {
                "type": "SwitchEnvironment",
                "environment": "network",
                "pamToken": network.control_token(),
            }
        )
        # Tasks now arrive on the network keyset's control channel, events go out there too.
        deadline = time.monotonic() + WAIT_S
        while True:
            _, watch = network.start_task()
            assert watch is not None
            try:
                assert next_event(watch, "terminal", timeout=1.0)["state"] == "completed"
                break
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise
    finally:
        playground.close()
        network.close()


def test_newest_control_token_is_applied_when_the_instance_goes_idle(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    handler = Blocking()
    handle = start_agent(agent_name="slow", handler=handler)
    raw: RawControl = raw_control(handle)
    fresh = raw.control_token(ttl_minutes=90)
    before = handle.pubnub._get_token()
    _, watch = raw.start_task(controlToken=fresh)
    assert watch is not None and handler.started.wait(WAIT_S)
    # Not while a task runs (§3.4.7) ...
    assert handle.pubnub._get_token() == before
    handler.release.set()
    next_event(watch, "terminal")
    # ... but once the instance is idle again.
    deadline = time.monotonic() + WAIT_S
    while handle.pubnub._get_token() != fresh and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.pubnub._get_token() == fresh != before


def test_revoked_control_token_is_fatal_with_a_clear_line(
    start_agent: AgentFactory, raw_control: Any, agent_env: Any, caplog: Any
) -> None:
    import logging

    handle = start_agent(agent_name="doomed", handler=lambda task, ctx: None)
    raw: RawControl = raw_control(handle)
    token = handle.pubnub._get_token()
    sub = raw.keyset.subscribe_key
    caplog.set_level(logging.ERROR, logger="blocks_network")
    agent_env.call(lambda: agent_env.context.realtime.access.revoke(sub, token))
    raw.publish(
        {"type": "RetryTask", "taskId": "t_wake"}
    )  # ends the held poll; the next is refused
    assert handle.wait(WAIT_S), "the instance did not stop after its access was revoked"
    fatal = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("access token expired or revoked" in m and "doomed" in m for m in fatal)


def test_cancel_while_a_returned_pipe_publishes_its_artifacts_still_ends_it(
    start_agent: AgentFactory, consumer: TaskClient, monkeypatch: Any
) -> None:
    from blocks_network.agent import context_services

    contexts: list[TaskContext] = []
    cancel_now: list[Any] = []
    session_ready = threading.Event()
    original = context_services.ContextServices.publish_bytes

    def publish_during_cancel(self: Any, *args: Any, **kwargs: Any) -> Any:
        # The cancel lands after the handler returned, before the task is released; the
        # handler may run before send_message has even returned here.
        assert wait_for_event(session_ready)
        cancel_now[0]()
        assert wait_for_event(contexts[0].cancel_event)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(context_services.ContextServices, "publish_bytes", publish_during_cancel)

    def pipe(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        contexts.append(ctx)
        return {"artifacts": [{"data": "partial", "mimeType": "text/plain"}]}

    start_agent(agent_name="piper", handler=pipe)
    with consumer.send_message("piper", [text_part("x")], task_kind="pipe", duration=5) as session:
        cancel_now.append(session.cancel)
        session_ready.set()
        assert session.wait_for_terminal(timeout=WAIT_S).state == "canceled"


def wait_for_event(event: threading.Event) -> bool:
    return event.wait(WAIT_S)


def test_start_task_redelivered_after_the_task_ended_is_ignored(
    start_agent: AgentFactory, raw_control: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    handle = start_agent(agent_name="once", handler=lambda task, ctx: calls.append(task.task_id))
    raw: RawControl = raw_control(handle)
    task_id, watch = raw.start_task()
    assert watch is not None
    assert next_event(watch, "terminal")["state"] == "completed"
    with caplog.at_level(logging.INFO, logger="blocks_network.agent.control"):
        raw.start_task(task_id, watch=False)  # e.g. a control poll replayed after a restart
        _, probe = raw.start_task()  # handled after the duplicate (in order)
        assert probe is not None
        assert next_event(probe, "terminal")["state"] == "completed"
    assert calls.count(task_id) == 1
    assert f"ignoring duplicate StartTask for {task_id}" in caplog.text
