"""Control messages (protocol §3.1, §3.4)."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_network.protocol import (
    PROTOCOL_VERSION,
    CancelTask,
    ControlMessage,
    ExpireTask,
    InlineArtifactRef,
    PauseTask,
    ProtocolError,
    RequestPart,
    ResumeTask,
    RetryTask,
    StartTask,
    SwitchEnvironment,
    TerminateTask,
    broadcast_control_meta,
    control_filter_expression,
    is_broadcast_meta,
    is_supported_protocol_version,
    parse_control_message,
    targeted_control_meta,
)

SPEC_START_TASK: dict[str, Any] = {
    "type": "StartTask",
    "protocolVersion": "2026-05-01",
    "taskId": "t_123",
    "agentName": "echo_py",
    "ownerId": "user_1",
    "orgId": "org_9",
    "requestParts": [{"partId": "text", "text": "hello"}],
    "callerClaims": {"sub": "user_1"},
    "taskKind": "request",
    "hasStream": False,
    "writeToken": "<pam T2>",
    "controlToken": "<pam>",
}

FULL_START_TASK = StartTask(
    task_id="t_9",
    request_parts=(
        RequestPart(part_id="text", text="hi"),
        RequestPart(part_id="f", artifact_ref=InlineArtifactRef.from_bytes(b"x")),
        RequestPart(extra={"a": 1}),
    ),
    agent_name="pipe_agent",
    owner_id="user_1",
    org_id="org_9",
    caller_claims={"sub": "user_1", "scope": ["x"]},
    request_summary={"parts": 3},
    task_kind="pipe",
    duration=30,
    duration_expires_at_ms=1717000000000,
    consumer_public_key="pk",
    has_stream=True,
    write_token="w",
    control_token="c",
)

ALL_MESSAGES: list[ControlMessage] = [
    FULL_START_TASK,
    StartTask(task_id="t_min", protocol_version=None),
    CancelTask(task_id="t", reason="user asked", caller="user_1"),
    CancelTask(task_id="t", protocol_version=None),
    ExpireTask(task_id="t", agent_name="a", reason="duration"),
    PauseTask(task_id="t", caller="u"),
    ResumeTask(task_id="t"),
    RetryTask(task_id="t"),
    TerminateTask(task_id="t", caller="admin"),
    SwitchEnvironment(environment="network", pam_token="tok"),
]


def test_spec_example_parses() -> None:
    task = StartTask.from_wire(SPEC_START_TASK)
    assert task.task_id == "t_123"
    assert task.request_parts == (RequestPart(part_id="text", text="hello"),)
    assert task.caller_claims == {"sub": "user_1"}
    assert (task.write_token, task.control_token) == ("<pam T2>", "<pam>")
    assert task.to_wire() == SPEC_START_TASK


@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: ControlMessage) -> None:
    wire = message.to_wire()
    assert wire["type"] == type(message).TYPE
    assert parse_control_message(wire) == message
    assert type(message).from_wire(wire) == message


def test_start_task_defaults() -> None:
    task = StartTask.from_wire({"type": "StartTask", "taskId": "t", "requestParts": []})
    assert task.task_kind == "request"
    assert task.has_stream is False
    assert task.protocol_version is None
    assert is_supported_protocol_version(task.protocol_version)


def test_owner_and_org_resolution() -> None:
    base = StartTask(task_id="t")
    assert base.resolved_owner_id == "anonymous"
    assert StartTask(task_id="t", caller_claims={"sub": "s1"}).resolved_owner_id == "s1"
    assert StartTask(task_id="t", caller_claims={"sub": 5}).resolved_owner_id == "anonymous"
    with_owner = StartTask(task_id="t", owner_id="o1", caller_claims={"sub": "s1"})
    assert with_owner.resolved_owner_id == "o1"
    assert with_owner.resolved_org_id == "o1"
    assert StartTask(task_id="t", owner_id="", org_id="org").resolved_org_id == "org"
    assert StartTask(task_id="t", owner_id="", caller_claims={"sub": "s"}).resolved_org_id == "s"


def test_without_tokens() -> None:
    stripped = FULL_START_TASK.without_tokens()
    assert stripped.write_token is None and stripped.control_token is None
    assert "writeToken" not in stripped.to_wire()
    assert stripped.task_id == FULL_START_TASK.task_id


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"task_kind": "request"}, None),
        ({"task_kind": "pipe", "duration": 30, "duration_expires_at_ms": 1.0}, None),
        ({"task_kind": "pipe", "duration": 30.0, "duration_expires_at_ms": 5}, None),
        ({"task_kind": "pipe", "duration": 1, "duration_expires_at_ms": 5}, None),
        ({"task_kind": "pipe", "duration": 43200, "duration_expires_at_ms": 5}, None),
        ({"task_kind": "pipe", "duration_expires_at_ms": 5}, "integer duration"),
        ({"task_kind": "pipe", "duration": 2.5, "duration_expires_at_ms": 5}, "integer duration"),
        ({"task_kind": "pipe", "duration": 0, "duration_expires_at_ms": 5}, "1..43200"),
        ({"task_kind": "pipe", "duration": 43201, "duration_expires_at_ms": 5}, "1..43200"),
        ({"task_kind": "pipe", "duration": 5}, "durationExpiresAtMs"),
        ({"task_kind": "pipe", "duration": 5, "duration_expires_at_ms": 0}, "durationExpiresAtMs"),
    ],
)
def test_pipe_problem(fields: dict[str, Any], problem: str | None) -> None:
    result = StartTask(task_id="t", **fields).pipe_problem()
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"taskId": None}, "StartTask.taskId: missing required field"),
        ({"taskId": 5}, "StartTask.taskId: expected a string, got number"),
        ({"requestParts": None}, "StartTask.requestParts: expected an array, got null"),
        ({"requestParts": "hi"}, "StartTask.requestParts: expected an array"),
        ({"requestParts": [{"text": 1}]}, r"requestParts\[0\]\.text"),
        ({"taskKind": "batch"}, "taskKind: must be one of 'request', 'pipe'"),
        ({"duration": True}, "duration: expected a number, got boolean"),
        ({"duration": "30"}, "duration: expected a number, got string"),
        ({"durationExpiresAtMs": False}, "durationExpiresAtMs: expected a number"),
        ({"hasStream": "yes"}, "hasStream: expected a boolean, got string"),
        ({"callerClaims": ["sub"]}, "callerClaims: expected an object, got array"),
        ({"writeToken": 1}, "writeToken: expected a string"),
        ({"protocolVersion": 20260501}, "protocolVersion: expected a string"),
    ],
)
def test_start_task_parse_errors(patch: dict[str, Any], message: str) -> None:
    wire = {**SPEC_START_TASK, **patch}
    wire = {k: v for k, v in wire.items() if not (k == "taskId" and v is None)}
    with pytest.raises(ProtocolError, match=message):
        parse_control_message(wire)


def test_start_task_error_carries_task_id_for_invalid_start_task() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_control_message({**SPEC_START_TASK, "duration": True})
    assert info.value.task_id == "t_123"
    assert info.value.message_type == "StartTask"


def test_parse_errors_of_small_messages() -> None:
    with pytest.raises(ProtocolError, match=r"CancelTask\.taskId: missing"):
        parse_control_message({"type": "CancelTask"})
    with pytest.raises(ProtocolError, match=r"PauseTask\.caller: expected a string"):
        parse_control_message({"type": "PauseTask", "taskId": "t", "caller": 1})
    with pytest.raises(ProtocolError, match="environment: must be one of"):
        parse_control_message({"type": "SwitchEnvironment", "environment": "prod", "pamToken": "x"})
    with pytest.raises(ProtocolError, match="pamToken: must not be empty"):
        parse_control_message(
            {"type": "SwitchEnvironment", "environment": "network", "pamToken": ""}
        )
    with pytest.raises(ProtocolError, match="pamToken: missing"):
        parse_control_message({"type": "SwitchEnvironment", "environment": "playground"})


def test_unknown_or_missing_type_is_ignored() -> None:
    assert parse_control_message({"type": "Reboot", "taskId": "t"}) is None
    assert parse_control_message({"taskId": "t"}) is None
    assert parse_control_message({"type": 7}) is None
    with pytest.raises(ProtocolError, match="expected a JSON object"):
        parse_control_message(["StartTask"])


def test_from_wire_checks_the_type() -> None:
    with pytest.raises(ProtocolError, match="expected 'CancelTask'"):
        CancelTask.from_wire({"type": "PauseTask", "taskId": "t"})
    with pytest.raises(ProtocolError, match="expected 'ResumeTask'"):
        ResumeTask.from_wire({"type": "PauseTask", "taskId": "t"})


def test_protocol_version_support() -> None:
    assert is_supported_protocol_version(PROTOCOL_VERSION)
    assert is_supported_protocol_version(None)
    assert not is_supported_protocol_version("2025-01-01")


def test_control_meta_and_filter() -> None:
    assert targeted_control_meta("AG-x-1") == {"instance": "AG-x-1"}
    assert broadcast_control_meta() == {"broadcast": "true"}
    assert (
        control_filter_expression("AG-x-1")
        == "meta.instance == 'AG-x-1' || meta.broadcast == \"true\""
    )
    assert is_broadcast_meta({"broadcast": "true"})
    assert is_broadcast_meta({"broadcast": True})
    assert not is_broadcast_meta({"instance": "AG-x-1"})
    assert not is_broadcast_meta({"broadcast": ""})
    assert not is_broadcast_meta(None)
