"""Task RPC params/results and read-token bodies (protocol §4, §5.4-5.5)."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_network.protocol import (
    AnonTaskReadTokenRequest,
    ProtocolError,
    RequestPart,
    RpcErrorData,
    SendMessageParams,
    SendMessageResult,
    TaskIdParams,
    TaskInfo,
    TaskReadTokenRequest,
    TaskReadTokenResponse,
    billing_mode_mismatch_data,
    parse_billing_mode_mismatch,
)

FULL_PARAMS = SendMessageParams(
    agent_name="echo",
    billing_mode="paid",
    request_parts=(RequestPart(part_id="text", text="hi"),),
    owner_id="user_1",
    idempotency_key="k1",
    upload_session_id="up1",
    stream=True,
    task_kind="pipe",
    duration=30,
    consumer_public_key="pk",
    push_notification_config={"url": "https://x"},
    retry_policy={"max": 2},
)


def test_send_message_params_wire_shape() -> None:
    assert FULL_PARAMS.to_wire() == {
        "agentName": "echo",
        "billingMode": "paid",
        "requestParts": [{"partId": "text", "text": "hi"}],
        "ownerId": "user_1",
        "idempotencyKey": "k1",
        "uploadSessionId": "up1",
        "extensions": {
            "blocks": {
                "stream": True,
                "taskKind": "pipe",
                "duration": 30,
                "consumerPublicKey": "pk",
            }
        },
        "pushNotificationConfig": {"url": "https://x"},
        "retryPolicy": {"max": 2},
    }


def test_send_message_params_round_trip() -> None:
    minimal = SendMessageParams(agent_name="echo", billing_mode="free")
    assert minimal.to_wire() == {
        "agentName": "echo",
        "billingMode": "free",
        "requestParts": [],
        "ownerId": "",
    }
    for params in (FULL_PARAMS, minimal, SendMessageParams("a", "free", stream=False)):
        assert SendMessageParams.from_wire(params.to_wire()) == params


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"agentName": None}, "agentName: missing"),
        ({"billingMode": "premium"}, "billingMode: must be one of 'free', 'paid'"),
        ({"requestParts": None}, "requestParts: missing"),
        ({"requestParts": [{"partId": 1}]}, r"requestParts\[0\]\.partId"),
        ({"ownerId": 5}, "ownerId: expected a string"),
        ({"extensions": {"blocks": {"stream": "yes"}}}, "stream: expected a boolean"),
        ({"extensions": {"blocks": {"taskKind": "batch"}}}, "taskKind: must be one of"),
        ({"extensions": {"blocks": {"taskKind": "pipe"}}}, "a pipe task needs an integer duration"),
        (
            {"extensions": {"blocks": {"taskKind": "pipe", "duration": 43201}}},
            "a pipe task needs",
        ),
        (
            {"extensions": {"blocks": {"taskKind": "pipe", "duration": True}}},
            "duration: expected an integer",
        ),
        ({"extensions": {"blocks": {"duration": 5}}}, "only pipe tasks take a duration"),
        ({"extensions": []}, "extensions: expected an object"),
    ],
)
def test_send_message_params_errors(patch: dict[str, Any], message: str) -> None:
    wire = {"agentName": "echo", "billingMode": "free", "requestParts": [], **patch}
    wire = {k: v for k, v in wire.items() if v is not None}
    with pytest.raises(ProtocolError, match=message):
        SendMessageParams.from_wire(wire)


SPEC_RESULT = {
    "taskId": "t_123",
    "state": "submitted",
    "idempotent": False,
    "queued": False,
    "pushConfigId": "optional",
    "extensions": {
        "blocks": {
            "readToken": "<pam T4>",
            "streamChannels": {"status": "u.org_9.t_123"},
            "subscribeKey": "sub-c-target",
            "publishKey": "pub-c-target",
        }
    },
}


def test_send_message_result_spec_example() -> None:
    result = SendMessageResult.from_wire(SPEC_RESULT)
    assert result.read_token == "<pam T4>"
    assert result.status_channel == "u.org_9.t_123"
    assert not result.is_terminal
    assert result.to_wire() == SPEC_RESULT


def test_send_message_result_minimal_and_terminal() -> None:
    result = SendMessageResult.from_wire({"taskId": "t", "state": "completed", "idempotent": True})
    assert result.is_terminal and result.idempotent
    assert result.read_token is None and result.status_channel is None
    assert SendMessageResult.from_wire(result.to_wire()) == result
    with pytest.raises(ProtocolError, match="idempotent: expected a boolean"):
        SendMessageResult.from_wire({"taskId": "t", "state": "x", "idempotent": "no"})
    with pytest.raises(ProtocolError, match="state: missing"):
        SendMessageResult.from_wire({"taskId": "t"})


def test_task_id_params() -> None:
    assert TaskIdParams.from_wire({"taskId": "t"}).to_wire() == {"taskId": "t"}
    with pytest.raises(ProtocolError, match=r"CancelTask\.params\.taskId: missing"):
        TaskIdParams.from_wire({}, "CancelTask")


def test_task_info_wrapped_and_bare() -> None:
    bare = {"taskId": "t", "state": "running", "agentName": "a", "owner": "u",
            "createdTime": 1, "updatedTime": "2026-05-01T00:00:00Z", "custom": [1]}  # fmt: skip
    info = TaskInfo.from_wire({"task": bare})
    assert info == TaskInfo.from_wire(bare)
    assert info.extra == {"custom": [1]}
    assert info.to_wire() == bare
    with pytest.raises(ProtocolError, match="createdTime"):
        TaskInfo.from_wire({**bare, "createdTime": 1.5})


def test_read_token_bodies() -> None:
    assert TaskReadTokenRequest.from_wire({"taskId": "t"}).role == "consumer"
    request = TaskReadTokenRequest("t", "provider")
    assert TaskReadTokenRequest.from_wire(request.to_wire()) == request
    with pytest.raises(ProtocolError, match="role: must be one of"):
        TaskReadTokenRequest.from_wire({"taskId": "t", "role": "admin"})
    anon = AnonTaskReadTokenRequest("t", "fp")
    assert AnonTaskReadTokenRequest.from_wire(anon.to_wire()) == anon
    response = TaskReadTokenResponse("tok", "u.o.t", 60)
    assert response.to_wire() == {"pamToken": "tok", "channel": "u.o.t", "ttlMinutes": 60}
    assert TaskReadTokenResponse.from_wire(response.to_wire()) == response
    with pytest.raises(ProtocolError, match="ttlMinutes: expected an integer"):
        TaskReadTokenResponse.from_wire({"pamToken": "t", "channel": "c", "ttlMinutes": "60"})


def test_billing_mode_mismatch() -> None:
    data = billing_mode_mismatch_data("paid", "free")
    assert data.code == "BillingModeMismatch"
    assert data.details == {"expected": "paid", "got": "free"}
    assert "billing_mode='paid'" in data.message
    assert parse_billing_mode_mismatch(data) == ("paid", "free")
    assert parse_billing_mode_mismatch(None) is None
    assert parse_billing_mode_mismatch(RpcErrorData("OTHER", "", {"expected": "paid"})) is None
    bad = RpcErrorData("BillingModeMismatch", "", {"expected": "gold", "got": "free"})
    assert parse_billing_mode_mismatch(bad) is None
