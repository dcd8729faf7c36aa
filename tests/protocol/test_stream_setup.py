"""Stream-setup handshake (protocol §8.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from blocks_network.protocol import (
    ProtocolError,
    StreamSetup,
    StreamSetupFailure,
    StreamSetupOk,
    invert_direction,
    parse_stream_setup_rejection,
    parse_stream_setup_result,
    stream_setup_rejection_body,
)

SPEC_SETUP: dict[str, Any] = {
    "type": "stream_setup",
    "protocolVersion": "2026-05-01",
    "taskId": "t_1",
    "orgId": "org_9",
    "agentName": "echo_stream",
    "streamId": "t_1-1",
    "channel": "stream.echo_stream.t_1-1",
    "direction": "outbound",
    "taskKind": "request",
    "durationMinutes": 1,
    "format": "events",
    "affinity": "dedicated",
    "declaredStream": "_default",
    "phase": "embedded",
    "metadata": {},
}


def test_spec_example_round_trips() -> None:
    setup = StreamSetup.from_wire(SPEC_SETUP)
    assert setup.phase == "embedded"
    assert setup.to_wire() == SPEC_SETUP


def test_minimal_setup_round_trips() -> None:
    setup = StreamSetup(
        task_id="t",
        org_id="o",
        agent_name="a",
        stream_id="live",
        channel="stream.a.live",
        direction="bidirectional",
        task_kind="pipe",
        duration_minutes=60,
        format="bytes",
        affinity="shared",
    )
    assert StreamSetup.from_wire(setup.to_wire()) == setup


def test_whole_float_duration_is_accepted() -> None:
    assert StreamSetup.from_wire({**SPEC_SETUP, "durationMinutes": 5.0}).duration_minutes == 5


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"affinity": None}, "affinity: missing"),
        ({"affinity": "pooled"}, "affinity: must be one of"),
        ({"direction": "up"}, "direction: must be one of"),
        ({"format": "video"}, "format: must be one of"),
        ({"phase": "later"}, "phase: must be one of"),
        ({"durationMinutes": 0}, "durationMinutes: must be ≥ 1"),
        ({"durationMinutes": 1.5}, "durationMinutes: expected an integer"),
        ({"durationMinutes": True}, "durationMinutes: expected an integer"),
        ({"streamId": ""}, "streamId: must not be empty"),
        ({"metadata": []}, "metadata: expected an object"),
        ({"type": "stream_data"}, "expected 'stream_setup'"),
    ],
)
def test_setup_parse_errors(patch: dict[str, Any], message: str) -> None:
    wire = {k: v for k, v in {**SPEC_SETUP, **patch}.items() if v is not None}
    with pytest.raises(ProtocolError, match=message):
        StreamSetup.from_wire(wire)


OK = StreamSetupOk(
    task_id="t_1",
    stream_id="t_1-1",
    channel="stream.echo_stream.t_1-1",
    direction="outbound",
    phase="embedded",
    token_ttl_minutes=5,
    token="T7a",
)


@pytest.mark.parametrize(
    "result",
    [
        OK,
        StreamSetupOk("t", "s", "stream.a.s", "inbound", "activate", 1),
        StreamSetupFailure("InvalidArgument", "affinity is required"),
    ],
)
def test_result_round_trips_through_the_403_body(
    result: StreamSetupOk | StreamSetupFailure,
) -> None:
    body = stream_setup_rejection_body(result)
    assert body["status"] == 403
    assert parse_stream_setup_result(body["message"]) == result
    assert parse_stream_setup_rejection(body) == result
    assert parse_stream_setup_rejection(json.dumps(body)) == result
    assert parse_stream_setup_rejection(json.dumps(body).encode()) == result
    stringly = {"message": json.dumps(result.to_wire()), "status": 403}
    assert parse_stream_setup_rejection(stringly) == result


def test_success_wire_shape() -> None:
    assert OK.to_wire() == {
        "ok": True,
        "streamSetupResponse": {
            "taskId": "t_1",
            "streamId": "t_1-1",
            "channel": "stream.echo_stream.t_1-1",
            "direction": "outbound",
            "phase": "embedded",
            "tokenTtlMinutes": 5,
            "token": "T7a",
        },
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not valid JSON"),
        ({"message": "Forbidden", "status": 403}, "not valid JSON"),
        (
            {"message": "Forbidden", "payload": {}, "error": True, "status": 403}
            | {"message": {"x": 1}},
            "ok: missing",
        ),
        ({"status": 403}, "did not run the stream-setup handler"),
        ({"message": {"ok": False}}, "error: missing"),
        ({"message": {"ok": True, "streamSetupResponse": {"taskId": "t"}}}, "streamId: missing"),
    ],
)
def test_rejection_parse_errors(body: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_stream_setup_rejection(body)


def test_ttl_must_be_positive() -> None:
    wire = OK.to_wire()
    wire["streamSetupResponse"]["tokenTtlMinutes"] = 0
    with pytest.raises(ProtocolError, match="tokenTtlMinutes"):
        parse_stream_setup_result(wire)


def test_invert_direction() -> None:
    assert invert_direction("outbound") == "inbound"
    assert invert_direction("inbound") == "outbound"
    assert invert_direction("bidirectional") == "bidirectional"
