"""Custom handlers end to end: the seed's example, TaskContext services, errors, bad results."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from typing import Any

import pytest
from pubnub.pubnub import PubNub

from blocks_devnet.network import LocalNetwork
from blocks_network.agent.logging import AgentLogFormatter
from blocks_network.consumer import TaskClient, file_part, text_part
from blocks_network.protocol.channels import task_channel
from blocks_network.types import StartTaskMessage, TaskContext
from tests.sdk.agent.conftest import AgentFactory
from tests.support.pubnub_clients import make_config

WAIT_S = 10.0


def seed_handler(task: StartTaskMessage, ctx: TaskContext | None = None) -> dict[str, Any]:
    """The handler of the seed README's "Creating Custom Handlers", verbatim in behaviour."""
    input_part = task.request_parts[0] if task.request_parts else None
    result = {"ok": True, "received": input_part}
    return {"artifacts": [{"data": json.dumps(result, indent=2), "mimeType": "application/json"}]}


def _finish(consumer: TaskClient, agent: str, parts: list[Any]) -> tuple[Any, list[Any], list[Any]]:
    with consumer.send_message(agent, parts) as session:
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        artifacts = [session.download_artifact(ref) for ref in session.list_artifacts()]
        events = list(session.events)
    return terminal, artifacts, events


def test_seed_handler_receives_the_wire_part(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    start_agent(
        agent_name="my_agent",
        description="My agent",
        capabilities=["example"],
        handler=seed_handler,
    )
    terminal, artifacts, _ = _finish(consumer, "my_agent", [text_part("hello")])
    assert terminal.state == "completed"
    assert json.loads(artifacts[0].data) == {
        "ok": True,
        "received": {"partId": "text", "text": "hello"},
    }
    assert artifacts[0].mime_type == "application/json"


def test_task_fields_reach_the_handler_without_tokens(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    seen: list[StartTaskMessage] = []

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        seen.append(task)

    start_agent(agent_name="fields", handler=handler)
    terminal, artifacts, _ = _finish(consumer, "fields", [text_part("x")])
    assert terminal.state == "completed" and artifacts == []
    task = seen[0]
    assert task.task_id == terminal.task_id
    assert task.agent_name == "fields" and task.task_kind == "request" and not task.has_stream
    assert task.owner_id == consumer.get_user_id()
    assert task.write_token is None
    assert task.protocol_version == "2026-05-01"


def test_report_status_is_throttled_latest_wins(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    flushed = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        for text in ("step 1", "step 2", "step 3"):
            ctx.report_status(text)
        assert flushed.wait(WAIT_S), "the buffered status was never published"

    start_agent(agent_name="chatty", handler=handler)
    messages: list[tuple[str, int | None]] = []

    def on_progress(event: Any) -> None:
        if event.message:
            messages.append((event.message, event.timetoken))
            if event.message == "step 3":
                flushed.set()

    with consumer.send_message("chatty", [text_part("go")]) as session:
        session.on_progress(on_progress)
        assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
    assert [m for m, _ in messages] == ["step 1", "step 3"]
    first, last = messages[0][1], messages[1][1]
    assert first is not None and last is not None
    assert (last - first) / 10_000_000 >= 0.9  # timetokens are 100 ns units


def test_publish_artifact_before_the_returned_ones(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        ref = ctx.publish_artifact("early", mime_type="text/plain", output_id="draft")
        assert ref.size == 5
        return {
            "artifacts": [
                {
                    "data": b"\x00\x01late",
                    "mimeType": "application/octet-stream",
                    "fileName": "x.bin",
                }
            ]
        }

    start_agent(agent_name="arts", handler=handler)
    terminal, artifacts, events = _finish(consumer, "arts", [text_part("go")])
    assert terminal.state == "completed"
    assert [(a.data, a.file_name) for a in artifacts] == [
        (b"early", None),
        (b"\x00\x01late", "x.bin"),
    ]
    outputs = [e.data.get("outputId") for e in events if e.type == "artifact"]
    assert outputs == ["draft", None]


def test_download_input_artifact_inline_and_uploaded(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        summary = []
        for part in task.request_parts:
            got = ctx.download_input_artifact(part)
            summary.append([hashlib.sha256(got.data).hexdigest(), got.mime_type, got.file_name])
        return {"artifacts": [{"data": json.dumps(summary), "mimeType": "application/json"}]}

    card = _card(
        "reader",
        inputs=[("small", "application/octet-stream"), ("big", "application/octet-stream")],
    )
    start_agent(agent_name="reader", handler=handler, card=card)
    small, big = os.urandom(100), os.urandom(200_000)
    parts = [
        file_part(small, part_id="small", file_name="s.bin"),
        file_part(big, part_id="big", file_name="b.bin"),
    ]
    terminal, artifacts, _ = _finish(consumer, "reader", parts)
    assert terminal.state == "completed", terminal.data
    assert json.loads(artifacts[0].data) == [
        [hashlib.sha256(small).hexdigest(), "application/octet-stream", "s.bin"],
        [hashlib.sha256(big).hexdigest(), "application/octet-stream", "b.bin"],
    ]


def _card(name: str, *, inputs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "identity": {
            "agentName": name,
            "displayName": name,
            "description": "test agent",
            "version": "1.0.0",
            "provider": {"organization": "tests"},
        },
        "capabilities": {"taskKinds": ["request"]},
        "io": {
            "inputs": [
                {"id": i, "description": i, "contentType": ct, "required": False}
                for i, ct in inputs
            ],
        },
    }


def test_handler_exception_fails_the_task_and_calls_on_error(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    errors: queue.Queue[tuple[str, BaseException]] = queue.Queue()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        raise RuntimeError("the model is down")

    start_agent(
        agent_name="broken", handler=handler, on_error=lambda tid, exc: errors.put((tid, exc))
    )
    terminal, _, _ = _finish(consumer, "broken", [text_part("x")])
    assert (terminal.state, terminal.data["error"]) == ("failed", "RuntimeError: the model is down")
    # on_error runs after the failed terminal is published, so it may trail the consumer.
    task_id, exc = errors.get(timeout=10)
    assert (task_id, str(exc)) == (terminal.task_id, "the model is down")
    assert errors.empty()


def test_handler_exception_reaches_the_consumer_typed_and_the_log_with_its_traceback(
    start_agent: AgentFactory, consumer: TaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        task.request_parts[0]["txt"]  # the classic typo: a KeyError whose str is "'txt'"

    start_agent(agent_name="typo", handler=handler)
    with caplog.at_level(logging.ERROR, logger="blocks_network.agent.task_runner"):
        terminal, _, _ = _finish(consumer, "typo", [text_part("x")])
    # The consumer gets the type and the message, never the traceback.
    assert (terminal.state, terminal.data["error"]) == ("failed", "KeyError: 'txt'")
    # The agent log: one ERROR record carrying the exception, rendered with its traceback.
    failed = [r for r in caplog.records if r.exc_info and terminal.task_id in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    line = json.loads(AgentLogFormatter().format(failed[0]))
    assert line["error"] == "KeyError: 'txt'"
    assert "Traceback" in line["traceback"] and 'request_parts[0]["txt"]' in line["traceback"]


def test_exception_without_text_names_its_class(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        raise ValueError()

    start_agent(agent_name="broken", handler=handler)
    terminal, _, _ = _finish(consumer, "broken", [text_part("x")])
    assert terminal.data["error"] == "Agent instance error (ValueError)"


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (42, "handler returned int"),
        ({"data": "x"}, 'handler returned a dict without "artifacts" (keys: data)'),
        ({"artifacts": "text"}, '"artifacts" must be a list'),
        ({"artifacts": ["text"]}, "artifacts[0] must be an object"),
        ({"artifacts": [{"mimeType": "text/plain"}]}, "artifacts[0] has no data"),
        ({"artifacts": [{"data": 3.5}]}, "artifacts[0].data must be str or bytes, got float"),
        ({"artifacts": [{"data": "x", "mimeType": 7}]}, "artifacts[0].mimeType must be a string"),
    ],
)
def test_invalid_results_fail_with_a_message(
    start_agent: AgentFactory, consumer: TaskClient, result: object, expected: str
) -> None:
    start_agent(agent_name="sloppy", handler=lambda task, ctx: result)
    terminal, artifacts, _ = _finish(consumer, "sloppy", [text_part("x")])
    assert terminal.state == "failed"
    assert expected in terminal.data["error"]
    assert artifacts == []


def test_handler_calls_another_agent_through_ctx_task_client(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    from blocks_network.handlers.echo import echo_handler

    def orchestrator(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        with ctx.task_client.send_message("echo", [text_part("from the orchestrator")]) as inner:
            inner.wait_for_terminal(timeout=WAIT_S)
            data = inner.download_artifact(inner.list_artifacts()[0]).data
        return {"artifacts": [{"data": b"inner said: " + data, "mimeType": "text/plain"}]}

    start_agent(agent_name="echo", handler=echo_handler)
    start_agent(agent_name="boss", handler=orchestrator)
    terminal, artifacts, _ = _finish(consumer, "boss", [text_part("go")])
    assert terminal.state == "completed", terminal.data
    assert artifacts[0].data == b"inner said: Echoed request: from the orchestrator"


def test_on_start_task_override_gets_the_write_token(
    start_agent: AgentFactory, consumer: TaskClient, agent_env: LocalNetwork
) -> None:
    got: list[tuple[StartTaskMessage, Any]] = []
    arrived = threading.Event()

    def override(task: StartTaskMessage, control: Any) -> None:
        got.append((task, control))
        arrived.set()

    handle = start_agent(agent_name="manual", handler=None, on_start_task=override)
    with consumer.send_message("manual", [text_part("x")]) as session:
        assert arrived.wait(WAIT_S)
        task, control = got[0]
        assert task.write_token and control is handle["pubnub"]
        # The override owns the task: with its write token it can end it itself.
        keyset = agent_env.keysets["playground"]
        client = PubNub(make_config(agent_env.origin, keyset, handle["instance_id"]))
        client.set_token(task.write_token)
        try:
            client.publish().channel(task_channel(task.org_id, task.task_id)).message(
                {"type": "terminal", "taskId": task.task_id, "state": "completed"}
            ).sync()
        finally:
            client.stop()
        assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
        # No automatic events: the only agent event is the one published above.
        assert [e.type for e in session.events] == ["request", "terminal"]


def test_on_cancel_task_override_replaces_the_default(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    cancelled: list[str] = []
    done = threading.Event()
    started = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        started.set()
        assert done.wait(WAIT_S)
        # The default cancel path (setting the event) was replaced.
        assert not ctx.is_cancelled

    def on_cancel(task_id: str, control: Any) -> None:
        cancelled.append(task_id)
        done.set()

    start_agent(agent_name="custom_cancel", handler=handler, on_cancel_task=on_cancel)
    with consumer.send_message("custom_cancel", [text_part("x")]) as session:
        assert started.wait(WAIT_S)
        session.cancel()
        assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
    assert cancelled == [session.task_id]
