"""StreamDescriptor direction inversion and StreamRef open rules."""

from __future__ import annotations

import pytest

from blocks_network.errors import StreamUnavailableError
from blocks_network.protocol.stream_setup import StreamAnnouncement
from blocks_network.stream import StreamClient, StreamClosedError, StreamDescriptor, StreamRef
from blocks_network.stream.client import StreamInfo
from blocks_network.stream.reader import StreamReader


def announcement(direction: str = "outbound", fmt: str = "bytes") -> StreamAnnouncement:
    return StreamAnnouncement(
        channel="stream.echo_stream.t_1-1",
        token="T7c",
        direction=direction,  # type: ignore[arg-type]
        format=fmt,
        affinity="dedicated",
        metadata={"k": "v"},
        token_ttl_minutes=5,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("agent", "local", "readable", "writable"),
    [
        ("outbound", "inbound", True, False),
        ("inbound", "outbound", False, True),
        ("bidirectional", "bidirectional", True, True),
    ],
)
def test_consumer_descriptor_inverts_direction(
    agent: str, local: str, readable: bool, writable: bool
) -> None:
    d = StreamDescriptor.for_consumer("t_1", "t_1-1", announcement(agent), "_default")
    assert d.agent_direction == agent and d.local_direction == local == d.direction
    assert (d.readable, d.writable) == (readable, writable)
    assert d.agent_name == "echo_stream" and d.channel == "stream.echo_stream.t_1-1"
    assert d.token == "T7c" and d.metadata == {"k": "v"} and d.declared_stream == "_default"
    assert d.token_ttl_minutes == 5 and d.name == "_default"


class Opener:
    def __init__(self) -> None:
        self.calls = 0
        self.readers: list[StreamReader] = []

    def __call__(self, d: StreamDescriptor) -> StreamClient:
        self.calls += 1
        r = StreamReader(
            stream_id=d.stream_id,
            channel=d.channel,
            format=d.format,
            user_id="u",
            reorder_window_ms=0,
        )
        self.readers.append(r)
        return StreamClient(
            StreamInfo(d.task_id, d.stream_id, d.channel, d.local_direction, d.format, d.affinity),
            reader=r,
        )


def make_ref(state: list[str | None]) -> tuple[StreamRef, Opener]:
    opener = Opener()
    d = StreamDescriptor.for_consumer("t_1", "t_1-1", announcement(), "chat")
    return StreamRef(d, opener=opener, terminal_state=lambda: state[0]), opener


def test_open_is_idempotent_while_active() -> None:
    ref, opener = make_ref([None])
    first = ref.open()
    assert ref.open() is first and opener.calls == 1
    assert ref.opened and ref.active


def test_reopen_after_end_raises() -> None:
    ref, opener = make_ref([None])
    client = ref.open()
    opener.readers[0].accept({"type": "stream_end", "streamId": "t_1-1", "seq": 0, "ts": 1})
    assert list(client.bytes(timeout=1)) == []
    with pytest.raises(StreamClosedError, match="cannot be reopened"):
        ref.open()


def test_reopen_after_close_raises() -> None:
    ref, _ = make_ref([None])
    ref.open().close()
    with pytest.raises(StreamClosedError):
        ref.open()


def test_never_opened_stream_of_terminal_task_is_unavailable_but_descriptor_readable() -> None:
    ref, opener = make_ref(["completed"])
    with pytest.raises(StreamUnavailableError) as info:
        ref.open()
    err = info.value
    assert isinstance(err, RuntimeError)
    assert (err.task_id, err.stream_id, err.declared_stream, err.terminal_state) == (
        "t_1",
        "t_1-1",
        "chat",
        "completed",
    )
    assert opener.calls == 0
    assert ref.descriptor.format == "bytes" and ref.descriptor.metadata == {"k": "v"}


def test_opened_stream_stays_available_after_terminal() -> None:
    state: list[str | None] = [None]
    ref, _ = make_ref(state)
    client = ref.open()
    state[0] = "completed"
    assert ref.open() is client
