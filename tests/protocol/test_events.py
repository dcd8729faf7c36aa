"""Task-channel events (protocol §3.2)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from blocks_network.protocol import (
    ArtifactEvent,
    CancelRequested,
    FileArtifactRef,
    InlineArtifactRef,
    LogEvent,
    ProgressMessage,
    ProgressState,
    ProtocolError,
    RequestEvent,
    RequestPart,
    StreamAnnouncement,
    StreamStarted,
    SystemEvent,
    TaskEvent,
    TerminalEvent,
    parse_task_event,
    task_event_meta,
)

SPEC_EXAMPLES: list[dict[str, Any]] = [
    {"type": "progress", "taskId": "t_123", "progress": 0, "state": "running",
     "protocolVersion": "2026-05-01"},
    {"type": "progress", "taskId": "t_123", "message": "step 2 of 5",
     "protocolVersion": "2026-05-01"},
    {"type": "artifact", "taskId": "t_123",
     "artifactRef": {"kind": "inline", "mimeType": "text/plain", "size": 20,
                     "data": "RWNob2VkIHJlcXVlc3Q6IGhp"},
     "protocolVersion": "2026-05-01"},
    {"type": "terminal", "taskId": "t_123", "state": "completed",
     "protocolVersion": "2026-05-01"},
]  # fmt: skip

ALL_EVENTS: list[TaskEvent] = [
    RequestEvent("t", (RequestPart(part_id="text", text="hi"),)),
    ProgressState("t"),
    ProgressState("t", state="queued", progress=None, protocol_version=None),
    ProgressMessage("t", "step 2"),
    StreamStarted(
        "t",
        {
            "t-1": StreamAnnouncement(
                channel="stream.a.t-1",
                token="T7c",
                direction="outbound",
                format="events",
                affinity="dedicated",
                metadata={"k": "v"},
                token_ttl_minutes=5,
            )
        },
        declared_stream="_default",
    ),
    ArtifactEvent("t", InlineArtifactRef.from_bytes(b"hi"), output_id="out"),
    ArtifactEvent("t", FileArtifactRef(channel="u.o.t", file_id="f", size=99_999)),
    SystemEvent("t", "paused"),
    CancelRequested("t", 1717000000000),
    LogEvent("t", "line"),
    TerminalEvent("t", "completed"),
    TerminalEvent("t", "failed", error="boom"),
    TerminalEvent("t", "canceled", reason="terminated"),
    TerminalEvent("t", "completed", completion_reason="duration_expired", protocol_version=None),
]


@pytest.mark.parametrize("wire", SPEC_EXAMPLES, ids=lambda w: str(w["type"]))
def test_spec_examples_round_trip_exactly(wire: dict[str, Any]) -> None:
    event = parse_task_event(wire)
    assert event is not None
    assert event.to_wire() == wire


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: TaskEvent) -> None:
    wire = event.to_wire()
    assert parse_task_event(wire) == event
    assert type(event).from_wire(wire) == event


def test_built_events_carry_the_protocol_version() -> None:
    assert TerminalEvent("t", "completed").to_wire()["protocolVersion"] == "2026-05-01"
    assert "protocolVersion" not in TerminalEvent("t", "completed", protocol_version=None).to_wire()


def test_progress_dispatch() -> None:
    assert isinstance(parse_task_event({"type": "progress", "taskId": "t", "message": "m"}),
                      ProgressMessage)  # fmt: skip
    assert isinstance(parse_task_event({"type": "progress", "taskId": "t", "state": "running"}),
                      ProgressState)  # fmt: skip
    assert (
        parse_task_event({"type": "progress", "taskId": "t", "streamEvent": "stream_paused"})
        is None
    )
    with pytest.raises(ProtocolError, match="needs one of"):
        parse_task_event({"type": "progress", "taskId": "t", "progress": 5})


def test_unknown_type_is_ignored() -> None:
    assert parse_task_event({"type": "telemetry", "taskId": "t"}) is None
    assert parse_task_event({"taskId": "t"}) is None
    with pytest.raises(ProtocolError):
        parse_task_event("terminal")


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"type": "terminal", "state": "completed"}, "terminal.taskId: missing"),
        ({"type": "terminal", "taskId": "t", "state": "running"}, "must be one of"),
        ({"type": "terminal", "taskId": "t", "state": "cancelled"}, "must be one of"),
        ({"type": "terminal", "taskId": "t"}, "terminal.state: missing"),
        ({"type": "terminal", "taskId": "t", "state": "failed", "error": 1}, "error: expected"),
        ({"type": "cancel_requested", "taskId": "t"}, "ts: missing"),
        ({"type": "cancel_requested", "taskId": "t", "ts": True}, "ts: expected an integer"),
        ({"type": "cancel_requested", "taskId": "t", "ts": 1.5}, "ts: expected an integer"),
        ({"type": "artifact", "taskId": "t"}, "artifactRef: missing"),
        ({"type": "artifact", "taskId": "t", "artifactRef": {"kind": "x", "size": 1}}, "kind"),
        ({"type": "system", "taskId": "t"}, "status: missing"),
        ({"type": "log", "taskId": "t", "message": None}, "message: missing"),
        ({"type": "request", "taskId": "t"}, "requestParts: expected an array"),
        ({"type": "progress", "taskId": "t", "state": "running", "progress": True}, "progress"),
        ({"type": "progress", "taskId": "t", "message": 3}, "message: expected a string"),
    ],
)
def test_parse_errors(wire: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_task_event(wire)


def test_parse_error_carries_task_id() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_task_event({"type": "terminal", "taskId": "t_5", "state": "weird"})
    assert info.value.task_id == "t_5"


def test_terminal_constructor_rejects_non_terminal_state() -> None:
    with pytest.raises(ProtocolError):
        TerminalEvent("t", "running")


def test_stream_started_drops_bad_entries_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    good = {"channel": "stream.a.s", "token": "k", "direction": "outbound",
            "format": "bytes", "affinity": "shared"}  # fmt: skip
    wire = {
        "type": "progress",
        "taskId": "t",
        "streamEvent": "stream_started",
        "streams": {
            "s": good,
            "bad_format": {**good, "format": "video"},
            "bad_affinity": {**good, "affinity": "pooled"},
            "no_token": {k: v for k, v in good.items() if k != "token"},
        },
    }
    with caplog.at_level(logging.WARNING):
        event = parse_task_event(wire)
    assert isinstance(event, StreamStarted)
    assert list(event.streams) == ["s"]
    assert event.streams["s"].affinity == "shared"
    assert len([r for r in caplog.records if "dropping announced stream" in r.message]) == 3


def test_stream_started_needs_a_streams_object() -> None:
    with pytest.raises(ProtocolError, match="streams: missing"):
        parse_task_event({"type": "progress", "taskId": "t", "streamEvent": "stream_started"})


def test_task_event_meta() -> None:
    assert task_event_meta("echo", "t") == {
        "agentName": "echo",
        "taskId": "t",
        "protocolVersion": "2026-05-01",
    }
