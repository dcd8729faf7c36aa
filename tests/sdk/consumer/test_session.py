"""TaskSession semantics end to end: dedup, first terminal, cancel, callbacks, waits, close."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import (
    CallbackErrorContext,
    ClosedError,
    TaskClient,
    TaskEvent,
    text_part,
)
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.control import CancelTask, StartTask, TerminateTask
from blocks_network.protocol.events import TerminalEvent
from tests.sdk.consumer.responder import Responder, silent

WAIT = 10.0


def test_duplicate_terminals_are_delivered_once(
    client: TaskClient, agent: Responder, network: LocalNetwork
) -> None:
    def twice(responder: Responder, task: StartTask) -> None:
        responder.agent.start(task)
        responder.agent.publish(task, TerminalEvent(task.task_id, "completed").to_wire())
        # The write token is revoked at the terminal: a second one comes from the backend's
        # safety net, as in production (scanner + agent).
        late = TerminalEvent(task.task_id, "failed", error="scanner").to_wire()
        channel = task_channel(task.resolved_org_id, task.task_id)
        network.call(lambda: network.context.publish(responder.agent.environment, channel, late))

    agent.handler = twice
    terminals: list[TaskEvent] = []
    session = client.send_message(agent_name="echo", request_parts=[text_part("t")])
    session.on_terminal(terminals.append)
    assert session.wait_for_terminal(timeout=WAIT).state == "completed"
    agent.started.get(timeout=WAIT)
    assert [t.state for t in terminals] == ["completed"]
    assert session.state == "completed"
    session.close()
    with client.connect(session.task_id) as again:  # history has both; first still wins
        assert again.terminal_event is not None and again.terminal_event.state == "completed"
        assert [e.state for e in again.events if e.type == "terminal"] == ["completed"]


def test_cancel_sends_cancel_task_and_sees_cancel_requested(
    client: TaskClient, agent: Responder
) -> None:
    agent.handler = silent
    controls: list[Any] = []

    def on_control(responder: Responder, message: Any) -> None:
        controls.append(message)
        if isinstance(message, CancelTask):
            task = responder.tasks[message.task_id]
            responder.agent.finish(task, "canceled")

    agent.on_control = on_control
    acks: list[TaskEvent] = []
    with client.send_message(agent_name="echo", request_parts=[text_part("c")]) as session:
        agent.started.get(timeout=WAIT)
        session.on_cancel_requested(acks.append)
        session.cancel()
        assert session.wait_for_terminal(timeout=WAIT).state == "canceled"
        assert len(acks) == 1 and acks[0].type == "cancel_requested"
        late: list[TaskEvent] = []
        session.on_cancel_requested(late.append)
        assert late == []  # never replayed after the terminal
    assert [type(c) for c in controls] == [CancelTask]


def test_terminate(client: TaskClient, agent: Responder) -> None:
    agent.handler = silent

    def on_control(responder: Responder, message: Any) -> None:
        if isinstance(message, TerminateTask):
            task = responder.tasks[message.task_id]
            responder.agent.finish(task, "canceled", reason="terminated")

    agent.on_control = on_control
    with client.send_message(agent_name="echo", request_parts=[text_part("c")]) as session:
        agent.started.get(timeout=WAIT)
        session.terminate()
        terminal = session.wait_for_terminal(timeout=WAIT)
        assert (terminal.state, terminal.reason) == ("canceled", "terminated")


def test_callback_errors_go_to_on_error(client: TaskClient, agent: Responder) -> None:
    received: list[tuple[BaseException, CallbackErrorContext]] = []
    session = client.send_message(agent_name="echo", request_parts=[text_part("e")])
    unsubscribe = session.on_error(lambda err, ctx: received.append((err, ctx)))

    def broken(event: TaskEvent) -> None:
        raise RuntimeError("callback bug")

    session.wait_for_terminal(timeout=WAIT)
    session.on_progress(broken)  # replayed: raises for the running event
    assert len(received) == 1
    error, context = received[0]
    assert str(error) == "callback bug"
    assert (context.entry_point, context.callback_type) == ("taskSession", "onProgress")
    assert isinstance(context.event, TaskEvent) and context.event.state == "running"
    unsubscribe()
    unsubscribe()
    session.on_terminal(broken)
    assert len(received) == 1
    session.close()


def test_callback_errors_without_on_error_are_logged_at_warning(
    client: TaskClient, agent: Responder, caplog: pytest.LogCaptureFixture
) -> None:
    session = client.send_message(agent_name="echo", request_parts=[text_part("w")])
    session.wait_for_terminal(timeout=WAIT)
    with caplog.at_level(logging.WARNING):
        session.on_terminal(lambda e: 1 / 0)
    [record] = [r for r in caplog.records if "onTerminal" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "ZeroDivisionError" in record.getMessage()
    session.close()


def test_live_callbacks_run_in_order_once(client: TaskClient, agent: Responder) -> None:
    gate = threading.Event()

    def gated(responder: Responder, task: StartTask) -> None:
        assert gate.wait(WAIT)
        responder.agent.start(task)
        for i in range(5):
            responder.progress(task, f"m{i}")
        responder.publish_inline(task, b"done")
        responder.agent.finish(task)

    agent.handler = gated
    seen: list[str] = []
    session = client.send_message(agent_name="echo", request_parts=[text_part("o")])
    session.on_event(lambda e: seen.append(e.message or e.type))
    gate.set()
    session.wait_for_terminal(timeout=WAIT)
    assert seen == ["request", "progress", "m0", "m1", "m2", "m3", "m4", "artifact", "terminal"]
    session.close()


def test_wait_for_terminal_times_out(client: TaskClient, agent: Responder) -> None:
    agent.handler = silent
    with client.send_message(agent_name="echo", request_parts=[text_part("s")]) as session:
        with pytest.raises(TimeoutError, match=r"did not end within 0\.3 s"):
            session.wait_for_terminal(timeout=0.3)
        assert session.state in ("running", "queued")


def test_close_before_the_end(client: TaskClient, agent: Responder) -> None:
    agent.handler = silent
    session = client.send_message(agent_name="echo", request_parts=[text_part("s")])
    session.close()
    session.close()
    with pytest.raises(ClosedError):
        session.wait_for_terminal(timeout=1)
    with pytest.raises(ClosedError):
        session.on_event(lambda e: None)
    with pytest.raises(ClosedError):
        session.cancel()


def test_idempotency_key_returns_the_existing_task(client: TaskClient, agent: Responder) -> None:
    first = client.send_message(
        agent_name="echo", request_parts=[text_part("i")], idempotency_key="key-1"
    )
    first.wait_for_terminal(timeout=WAIT)
    first.close()
    again = client.send_message(
        agent_name="echo", request_parts=[text_part("i")], idempotency_key="key-1"
    )
    assert again.task_id == first.task_id
    assert again.is_terminal and not again._subscribed  # pre-closed
    assert again.wait_for_terminal(timeout=0).state == "completed"
    assert again.download_artifact(again.list_artifacts()[0]).data == b"Echoed request: i"
    again.close()
    agent.started.get(timeout=WAIT)
    assert agent.started.empty()  # dispatched once


def test_idempotent_resend_of_a_running_task_follows_it(
    client: TaskClient, agent: Responder
) -> None:
    agent.handler = silent
    first = client.send_message(
        agent_name="echo", request_parts=[text_part("r")], idempotency_key="key-2"
    )
    task = agent.started.get(timeout=WAIT)
    again = client.send_message(
        agent_name="echo", request_parts=[text_part("r")], idempotency_key="key-2"
    )
    assert again.task_id == first.task_id and not again.is_terminal
    agent.agent.complete(task, "late")
    assert again.wait_for_terminal(timeout=WAIT).state == "completed"
    assert first.wait_for_terminal(timeout=WAIT).state == "completed"
    first.close()
    again.close()


def test_destroy_closes_sessions_and_blocks_further_use(
    client: TaskClient, agent: Responder
) -> None:
    agent.handler = silent
    session = client.send_message(agent_name="echo", request_parts=[text_part("d")])
    client.destroy()
    client.destroy()
    with pytest.raises(ClosedError):
        session.wait_for_terminal(timeout=1)
    with pytest.raises(ClosedError):
        client.send_message(agent_name="echo", request_parts=[text_part("d")])
    with pytest.raises(ClosedError):
        client.connect(session.task_id)
