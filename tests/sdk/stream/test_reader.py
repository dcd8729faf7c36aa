"""StreamReader fed directly: order, duplicates, bad frames, multipart, end, errors, no hangs."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Any

import pytest

from blocks_network.protocol.multipart import encode_frame_json, split_frame
from blocks_network.protocol.streams import StreamDataFrame, StreamEventsFrame
from blocks_network.stream.client import StreamClient, StreamInfo
from blocks_network.stream.errors import StreamError
from blocks_network.stream.reader import StreamReader

SID = "t1-1"
CH = f"stream.agent.{SID}"


def data(seq: int, text: str, sid: str = SID) -> dict[str, Any]:
    return StreamDataFrame(sid, seq, 1, (text,)).to_wire()


def events(seq: int, *evs: Any) -> dict[str, Any]:
    return StreamEventsFrame(SID, seq, 1, evs).to_wire()


def end(seq: int) -> dict[str, Any]:
    return {
        "type": "stream_end",
        "protocolVersion": "2026-05-01",
        "streamId": SID,
        "seq": seq,
        "ts": 1,
    }


def reader(fmt: str = "bytes", window_ms: float = 750, **kw: Any) -> StreamReader:
    return StreamReader(
        stream_id=SID,
        channel=CH,
        format=fmt,
        user_id="me-stream-0001",  # type: ignore[arg-type]
        reorder_window_ms=window_ms,
        **kw,
    )


def client(r: StreamReader, fmt: str = "bytes") -> StreamClient:
    info = StreamInfo("t1", SID, CH, "inbound", fmt, "dedicated")  # type: ignore[arg-type]
    return StreamClient(info, reader=r)


def feed(r: StreamReader, *payloads: object, **kw: Any) -> None:
    for p in payloads:
        r.accept(p, channel=CH, **kw)


def test_out_of_order_and_duplicates_come_out_in_order_once() -> None:
    r = reader()
    feed(
        r,
        data(1, "b"),
        data(0, "a"),
        data(0, "a"),
        data(3, "d"),
        data(2, "c"),
        data(1, "b"),
        end(4),
    )
    c = client(r)
    assert list(c.bytes(timeout=2)) == [b"a", b"b", b"c", b"d"]
    assert c.finished


def test_inbound_exposes_seq_ts_encoding() -> None:
    r = reader()
    payload = StreamDataFrame(
        SID, 0, 123, (base64.b64encode(b"\x00").decode(),), "base64"
    ).to_wire()
    feed(r, payload, end(1))
    (frame,) = list(client(r).inbound)
    assert (frame.seq, frame.ts, frame.encoding, frame.data) == (0, 123, "base64", b"\x00")


def test_events_are_flattened_and_binary_decoded() -> None:
    r = reader("events")
    feed(
        r,
        events(2, {"n": 3}),
        events(1, {"n": 1}, {"$binary": base64.b64encode(b"hi").decode()}),
        end(3),
    )
    assert list(client(r, "events").events(timeout=2)) == [{"n": 1}, b"hi", {"n": 3}]


def test_bad_frames_are_skipped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    r = reader()
    feed(
        r,
        "not an object",
        {"type": "stream_data", "streamId": SID, "seq": "zero"},
        {
            "type": "stream_data",
            "streamId": SID,
            "seq": 0,
            "ts": 1,
            "encoding": "base64",
            "chunks": ["%%%"],
        },
        data(0, "from another stream", sid="other-1"),
        data(0, "good"),
        {"no": "type"},
        end(1),
    )
    r.accept(data(0, "wrong channel"), channel="stream.agent.elsewhere")
    assert list(client(r).bytes(timeout=2)) == [b"good"]
    assert caplog.text.count("skipping a bad frame") == 6


def test_unknown_frame_types_with_integer_seq_pass_through_raw() -> None:
    r = reader()
    feed(r, {"type": "stream_marker", "seq": 7, "ts": 5, "note": "x"}, data(0, "a"), end(1))
    frames = list(client(r).inbound)
    assert [f.type for f in frames] == ["stream_marker", "stream_data"]
    assert frames[0].raw["note"] == "x"


def test_multipart_pieces_reassemble_in_any_order() -> None:
    r = reader()
    big = "z" * 9000
    pieces = split_frame(StreamDataFrame(SID, 0, 1, (big,)), max_message_size=2048)
    assert len(pieces) > 2
    for p in reversed(pieces):
        feed(r, json.loads(encode_frame_json(p.to_wire())))
    feed(r, end(1))
    assert client(r).read_all(timeout=2) == big.encode()


def test_truncated_multipart_is_given_up_after_the_reorder_window() -> None:
    r = reader(window_ms=100)
    pieces = split_frame(StreamDataFrame(SID, 1, 1, ("q" * 5000,)), max_message_size=2048)
    feed(r, data(0, "a"), *[json.loads(encode_frame_json(p.to_wire())) for p in pieces[:-1]])
    feed(r, data(2, "c"), end(3))
    started = time.monotonic()
    assert list(client(r).bytes(timeout=5)) == [b"a", b"c"]
    assert time.monotonic() - started < 2


def test_conflicting_multipart_duplicate_drops_the_group(caplog: pytest.LogCaptureFixture) -> None:
    r = reader(window_ms=50)
    pieces = [
        json.loads(encode_frame_json(p.to_wire()))
        for p in split_frame(StreamDataFrame(SID, 0, 1, ("q" * 5000,)), max_message_size=2048)
    ]
    bad = dict(pieces[0], data=base64.b64encode(b"garbage").decode())
    feed(r, pieces[0], bad, *pieces[1:], data(1, "b"), end(2))
    assert list(client(r).bytes(timeout=5)) == [b"b"]
    assert "conflicting duplicate" in caplog.text


def test_tail_gap_ends_after_window() -> None:
    r = reader(window_ms=100)
    feed(r, data(0, "a"), end(3))
    assert list(client(r).bytes(timeout=5)) == [b"a"]


def test_own_frames_are_dropped_for_bidirectional_readers() -> None:
    r = reader(filter_own=True)
    r.accept(data(0, "mine"), channel=CH, meta={"sender": "me-stream-0001"})
    r.accept(data(0, "theirs"), channel=CH, meta={"sender": "agent-stream-0002"})
    r.accept(end(1), channel=CH)
    assert list(client(r).bytes(timeout=2)) == [b"theirs"]


@pytest.mark.parametrize(
    ("category", "fatal"),
    [
        ("access_denied", True),
        ("bad_request", True),
        ("timeout", False),
        ("network_down", False),
        ("network_issues", False),
        ("malformed_response", False),
        ("other", False),
    ],
)
def test_errors_reach_on_error_and_fatal_ones_end_iterators(category: str, fatal: bool) -> None:
    r = reader()
    c = client(r)
    seen: list[StreamError] = []
    c.on_error(seen.append)
    feed(r, data(0, "before"))
    r.report_error(category, "boom")  # type: ignore[arg-type]
    assert [(e.category, e.fatal, e.channel, e.error) for e in seen] == [
        (category, fatal, CH, "boom")
    ]
    assert seen[0].timestamp > 1_600_000_000_000
    if fatal:
        assert list(c.bytes(timeout=2)) == [b"before"]
        assert c.fatal_error is seen[0]
    else:
        assert next(c.bytes(timeout=2)) == b"before"
        with pytest.raises(TimeoutError):
            next(c.bytes(timeout=0.2))


def test_a_fatal_error_stops_the_subscription_and_later_errors_are_ignored() -> None:
    link = _Link()
    r = reader()
    r.start(link, "tok")  # type: ignore[arg-type]
    seen: list[StreamError] = []
    r.on_error(seen.append)
    r.report_error("network_down", "blip")
    assert not link.subscriptions[0].stopped
    r.report_error("bad_request", "HTTP 400: Invalid filter")
    assert link.subscriptions[0].stopped
    r.report_error("access_denied", "later")
    assert [e.category for e in seen] == ["network_down", "bad_request"]


def test_connected_statuses_are_not_errors() -> None:
    r = reader()
    seen: list[StreamError] = []
    r.on_error(seen.append)
    r.report_error("connected", "up")
    r.report_error("reconnected", "up again")
    assert seen == []


def test_on_error_unsubscribe_and_raising_callback() -> None:
    r = reader()
    calls: list[str] = []

    def bad(err: StreamError) -> None:
        raise RuntimeError("callback bug")

    r.on_error(bad)
    unsub = r.on_error(lambda e: calls.append(e.category))
    r.report_error("timeout", "slow")
    unsub()
    r.report_error("timeout", "slow")
    assert calls == ["timeout"]


def test_close_ends_a_blocked_iterator() -> None:
    r = reader()
    c = client(r)
    got: list[bytes] = []
    done = threading.Event()

    def consume() -> None:
        got.extend(c.bytes())
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    feed(r, data(0, "a"))
    c.close()
    assert done.wait(3)
    t.join(3)
    assert got in ([b"a"], [])


def test_end_reading_keeps_queued_frames() -> None:
    r = reader()
    c = client(r)
    feed(r, data(0, "a"), data(1, "b"))
    c.end_reading()
    feed(r, data(2, "ignored after end"))
    assert list(c.bytes(timeout=2)) == [b"a", b"b"]
    assert c.exhausted


def test_wait_finished_polls_the_gap_timer() -> None:
    r = reader(window_ms=50)
    feed(r, data(1, "b"), end(2))
    assert r.wait_finished(3)
    assert list(client(r).bytes(timeout=1)) == [b"b"]


def test_file_like_reads() -> None:
    r = reader()
    feed(r, data(0, "line one\nline "), data(1, "two\n"), end(2))
    f = client(r).as_file()
    assert f.readline() == b"line one\n"
    assert f.read() == b"line two\n"


class _Subscription:
    def __init__(self) -> None:
        self.started = False
        self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


class _Link:
    def __init__(self) -> None:
        self.cursors: list[int] = []
        self.filters: list[str | None] = []
        self.subscriptions: list[_Subscription] = []

    def subscription(self, *, cursor: int, filter_expr: str | None, **kw: Any) -> _Subscription:
        self.cursors.append(cursor)
        self.filters.append(filter_expr)
        self.subscriptions.append(_Subscription())
        return self.subscriptions[-1]


@pytest.mark.parametrize(
    ("replay_after", "cursor"),
    [(None, 1000), (17_000_000_000_000_123, 17_000_000_000_000_123), (5, 1000)],
)
def test_subscription_replays_from_the_announcement_else_timetoken_1000(
    replay_after: int | None, cursor: int
) -> None:
    # A reopened shared stream's channel still buffers the previous writer's frames (same
    # seqs): replaying only what follows this task's announcement keeps them out.
    link = _Link()
    r = reader()
    r.start(link, "tok", replay_after=replay_after)  # type: ignore[arg-type]
    assert link.cursors == [cursor]
    r.close()
    assert link.subscriptions[0].started and link.subscriptions[0].stopped
    assert link.filters == [None]


def test_a_bidirectional_reader_filters_its_own_frames_on_the_server() -> None:
    link = _Link()
    r = reader(filter_own=True)
    r.start(link, "tok")  # type: ignore[arg-type]
    assert link.filters == ["meta.sender != 'me-stream-0001'"]
    r.close()
