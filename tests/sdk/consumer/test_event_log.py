"""EventLog: timetoken dedup (bounded FIFO), first terminal wins, cancel_requested once."""

from __future__ import annotations

from typing import Any

from blocks_network.consumer.event_log import EventLog, callback_kind
from blocks_network.consumer.events import TaskEvent
from blocks_network.protocol.artifacts import InlineArtifactRef


def ev(data: dict[str, Any], tt: int | None) -> TaskEvent:
    event = TaskEvent.from_wire({"taskId": "t1", **data}, tt)
    assert event is not None
    return event


def test_replayed_timetokens_are_dropped_and_untimed_events_kept() -> None:
    log = EventLog()
    assert log.add(ev({"type": "progress", "message": "a"}, 10))
    assert not log.add(ev({"type": "progress", "message": "a"}, 10))
    assert log.add(ev({"type": "log", "message": "x"}, None))
    assert log.add(ev({"type": "log", "message": "x"}, None))
    assert len(log.events) == 3
    assert log.high_water_mark == 10


def test_dedup_window_evicts_oldest_first() -> None:
    log = EventLog(window=3)
    for tt in (1, 2, 3, 4):
        assert log.add(ev({"type": "log", "message": str(tt)}, tt))
    assert log.add(ev({"type": "log", "message": "1 again"}, 1))  # evicted: accepted again
    assert not log.add(ev({"type": "log", "message": "4 again"}, 4))


def test_first_terminal_wins() -> None:
    log = EventLog()
    assert log.add(ev({"type": "progress", "progress": 0, "state": "running"}, 1))
    assert log.state == "running"
    assert log.add(ev({"type": "terminal", "state": "completed"}, 2))
    assert not log.add(ev({"type": "terminal", "state": "failed", "error": "scanner"}, 3))
    assert log.terminal is not None and log.terminal.state == "completed"
    assert log.state == "completed"
    log.add(ev({"type": "progress", "progress": 0, "state": "running"}, 4))
    assert log.state == "completed"


def test_cancel_requested_at_most_once_and_never_after_terminal() -> None:
    log = EventLog()
    assert log.add(ev({"type": "cancel_requested", "ts": 1}, 1))
    assert not log.add(ev({"type": "cancel_requested", "ts": 2}, 2))
    other = EventLog()
    other.add(ev({"type": "terminal", "state": "canceled"}, 1))
    assert not other.add(ev({"type": "cancel_requested", "ts": 2}, 2))


def test_artifacts_and_streams_accumulate() -> None:
    log = EventLog()
    ref = InlineArtifactRef.from_bytes(b"hi", mime_type="text/plain")
    log.add(ev({"type": "artifact", "artifactRef": ref.to_wire()}, 1))
    log.add(ev({"type": "artifact", "artifactRef": {"kind": "bogus"}}, 2))
    assert log.artifacts == [ref]
    started = {"type": "progress", "streamEvent": "stream_started", "streams": {"s1": {}}}
    assert log.add(ev(started, 3))
    assert not log.add(ev(started, 4))  # same stream id announced again
    assert log.add(ev({**started, "streams": {"s1": {}, "s2": {}}}, 5))
    assert len(log.stream_announcements) == 2


def test_callback_kinds() -> None:
    assert callback_kind(ev({"type": "terminal", "state": "failed"}, 1)) == "onTerminal"
    assert callback_kind(ev({"type": "terminal", "state": "running"}, 1)) is None
    assert callback_kind(ev({"type": "progress", "message": "m"}, 1)) == "onProgress"
    assert callback_kind(ev({"type": "system", "status": "paused"}, 1)) == "onSystem"
    assert callback_kind(ev({"type": "request", "requestParts": []}, 1)) is None
