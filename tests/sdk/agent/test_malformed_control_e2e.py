"""Garbage on the control channel is logged and skipped; the instance keeps serving."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from blocks_network.consumer import TaskClient, text_part
from blocks_network.handlers.echo import echo_handler
from tests.sdk.agent.conftest import AgentFactory
from tests.sdk.agent.raw_control import RawControl, next_event

GARBAGE: list[Any] = [
    "{not json",
    12345,
    True,
    ["StartTask", "t_1"],
    {},
    {"type": 7},
    {"type": "NoSuchMessage", "taskId": "t_x"},
    {"type": "StartTask"},
    {"type": "StartTask", "taskId": 42},
    {"type": "StartTask", "taskId": ""},
    {"type": "StartTask", "taskId": "t_bad_parts", "requestParts": "nope"},
    {"type": "StartTask", "taskId": "t_bad_kind", "requestParts": [], "taskKind": "forever"},
    {"type": "StartTask", "taskId": "t_bad_part", "requestParts": [{"text": 3}]},
    {"type": "CancelTask"},
    {"type": "CancelTask", "taskId": ["t"]},
    {"type": "ExpireTask", "taskId": None},
    {"type": "TerminateTask", "taskId": "t_unknown"},
    {"type": "PauseTask", "taskId": "t_unknown"},
    {"type": "RetryTask", "taskId": "t_unknown"},
    {"type": "SwitchEnvironment", "environment": "moon", "pamToken": "x"},
    {"type": "SwitchEnvironment", "environment": "network"},
    {"type": "StartTask", "taskId": "t_huge", "hasStream": "x" * 30_000, "requestParts": []},
    {"padding": "y" * 30_000},
]


@pytest.mark.parametrize("broadcast", [False, True], ids=["targeted", "broadcast"])
def test_garbage_is_skipped_and_the_instance_keeps_serving(
    start_agent: AgentFactory,
    consumer: TaskClient,
    raw_control: Any,
    broadcast: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle = start_agent(agent_name="echo", handler=echo_handler)
    raw: RawControl = raw_control(handle)
    caplog.set_level(logging.INFO, logger="blocks_network")
    for message in GARBAGE:
        raw.publish(message, broadcast=broadcast)
    # A task sent after the garbage (handled in order) still runs normally.
    with consumer.send_message("echo", [text_part("still here")]) as session:
        assert session.wait_for_terminal(timeout=10).state == "completed"
        data = session.download_artifact(session.list_artifacts()[0]).data
    assert data == b"Echoed request: still here"
    skipped = [r for r in caplog.records if "malformed control message skipped" in r.getMessage()]
    assert len(skipped) >= 10
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_broken_start_task_with_a_readable_id_is_answered(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    handle = start_agent(agent_name="echo", handler=echo_handler)
    raw: RawControl = raw_control(handle)
    task_id, watch = raw.start_task(requestParts="not a list")
    assert watch is not None
    terminal = next_event(watch, "terminal")
    assert (terminal["taskId"], terminal["state"], terminal["error"]) == (
        task_id,
        "failed",
        "invalid_start_task",
    )


def test_messages_without_instance_meta_are_filtered_out(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    seen: list[str] = []
    handle = start_agent(agent_name="echo", handler=lambda task, ctx: seen.append(task.task_id))
    raw: RawControl = raw_control(handle)
    other = {"instance": "AG-echo-00000000-0000-4000-8000-000000000000"}
    raw.publish({"type": "StartTask", "taskId": "t_other", "requestParts": []}, meta=other)
    raw.publish({"type": "StartTask", "taskId": "t_nometa", "requestParts": []}, meta=None)
    _, probe = raw.start_task()
    assert probe is not None and next_event(probe, "terminal")["state"] == "completed"
    assert "t_other" not in seen and "t_nometa" not in seen
