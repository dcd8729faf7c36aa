"""SessionStreams: announcement intake, wait_for_stream, open_all_streams, drain."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from blocks_network.errors import StreamUnavailableError
from blocks_network.stream import StreamClient, StreamDescriptor
from blocks_network.stream.client import StreamInfo
from blocks_network.stream.reader import StreamReader
from blocks_network.stream.session_streams import SessionStreams


def started(*streams: tuple[str, str], declared: str | None = None) -> dict[str, Any]:
    return {
        "type": "progress",
        "taskId": "t_1",
        "streamEvent": "stream_started",
        **({"declaredStream": declared} if declared else {}),
        "streams": {
            sid: {
                "channel": f"stream.agent.{sid}",
                "token": "tok",
                "direction": direction,
                "format": "events",
                "affinity": "dedicated",
            }
            for sid, direction in streams
        },
    }


class Harness:
    def __init__(self) -> None:
        self.state: str | None = None
        self.readers: dict[str, StreamReader] = {}
        self.streams = SessionStreams("t_1", link=self._no_link, terminal_state=lambda: self.state)
        self.streams._opener = self._open

    def _no_link(self) -> Any:
        raise AssertionError("no link in unit tests")

    def _open(self, d: StreamDescriptor) -> StreamClient:
        reader = None
        if d.readable:
            reader = StreamReader(
                stream_id=d.stream_id,
                channel=d.channel,
                format=d.format,
                user_id="u",
                reorder_window_ms=0,
            )
            self.readers[d.stream_id] = reader
        info = StreamInfo(
            d.task_id,
            d.stream_id,
            d.channel,
            d.local_direction,
            d.format,
            d.affinity,
            d.declared_stream,
        )
        return StreamClient(info, reader=reader)


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_first_announcement_of_a_stream_wins(h: Harness) -> None:
    (a,) = h.streams.add_announcement(started(("t_1-1", "outbound"), declared="tokens"))
    assert a.descriptor.declared_stream == "tokens" and a.descriptor.local_direction == "inbound"
    assert h.streams.add_announcement(started(("t_1-1", "inbound"), declared="other")) == []
    assert h.streams.add_announcement({"type": "progress", "streamEvent": "stream_started"}) == []
    assert [r.stream_id for r in h.streams.refs()] == ["t_1-1"]


def test_wait_for_stream_by_declared_name_then_id(h: Harness) -> None:
    h.streams.add_announcement(started(("t_1-1", "outbound"), declared="tokens"))
    h.streams.add_announcement(started(("t_1-2", "outbound"), declared="audio"))
    assert h.streams.wait_for_stream("audio", timeout=1).stream_id == "t_1-2"
    assert h.streams.wait_for_stream("t_1-1", timeout=1).stream_id == "t_1-1"
    # No name: the first announced (the seed's "ensure at least one is announced").
    assert h.streams.wait_for_stream(timeout=1).stream_id == "t_1-1"


def test_wait_for_stream_blocks_until_announced(h: Harness) -> None:
    timer = threading.Timer(0.1, lambda: h.streams.add_announcement(started(("t_1-1", "outbound"))))
    timer.start()
    assert h.streams.wait_for_stream(timeout=5).stream_id == "t_1-1"
    timer.join()
    with pytest.raises(TimeoutError):
        h.streams.wait_for_stream("nope", timeout=0.1)


def test_wait_for_stream_on_an_ended_task_fails_fast(h: Harness) -> None:
    h.state = "completed"
    with pytest.raises(StreamUnavailableError) as info:
        h.streams.wait_for_stream("tokens", timeout=30)
    assert info.value.terminal_state == "completed"


def test_open_all_opens_readable_refs_in_order_and_is_idempotent(h: Harness) -> None:
    h.streams.add_announcement(
        started(("t_1-1", "outbound"), ("t_1-2", "inbound"), ("t_1-3", "bidirectional"))
    )
    first = h.streams.open_all()
    assert [c.stream_id for c in first] == ["t_1-1", "t_1-3"]
    again = h.streams.open_all()
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_open_all_never_resurrects_after_terminal(h: Harness) -> None:
    h.streams.add_announcement(started(("t_1-1", "outbound"), ("t_1-2", "outbound")))
    opened = h.streams.wait_for_stream("t_1-1").open()
    h.state = "completed"
    assert h.streams.open_all() == [opened]
    with pytest.raises(StreamUnavailableError):
        h.streams.wait_for_stream("t_1-2").open()


def test_drain_returns_at_once_without_open_streams(h: Harness) -> None:
    h.streams.add_announcement(started(("t_1-1", "outbound")))
    h.streams.drain(30)  # would block 30 s if it waited


def test_drain_ends_unfinished_streams_and_keeps_received_frames(h: Harness) -> None:
    h.streams.add_announcement(started(("t_1-1", "outbound")))
    client = h.streams.wait_for_stream().open()
    h.readers["t_1-1"].accept(
        {"type": "stream_events", "streamId": "t_1-1", "seq": 1, "ts": 1, "events": [{"a": 1}]}
    )
    h.streams.drain(0.2)
    assert list(client.events(timeout=1)) == [{"a": 1}]


def test_close_closes_opened_clients(h: Harness) -> None:
    h.streams.add_announcement(started(("t_1-1", "outbound")))
    client = h.streams.wait_for_stream().open()
    h.streams.close()
    assert client.closed


def test_announcement_timetoken_becomes_the_descriptor_s_replay_start(h: Harness) -> None:
    (a,) = h.streams.add_announcement(started(("t_1-1", "outbound")), 17_000_000_000_000_123)
    (b,) = h.streams.add_announcement(started(("t_1-2", "outbound")))
    assert a.descriptor.announced_at == 17_000_000_000_000_123
    assert b.descriptor.announced_at is None
