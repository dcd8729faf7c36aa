"""Streams end to end over a real local network, below the runtime and the session."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.multipart import split_frame
from blocks_network.protocol.streams import StreamDataFrame
from blocks_network.stream import StreamError, StreamSetupError
from blocks_network.stream.opening import drain_streams

from .wire_harness import WireTask, start_wire_task


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LocalNetwork]:
    with LocalNetwork(
        DevnetConfig(port=0, data_dir=tmp_path / "devnet", long_poll_seconds=5)
    ) as net:
        yield net


@pytest.fixture
def wire(network: LocalNetwork, request: pytest.FixtureRequest) -> Iterator[WireTask]:
    name = "w_" + hashlib.sha1(request.node.name.encode()).hexdigest()[:10]
    task = start_wire_task(network, name)
    yield task
    task.close()


def test_bytes_stream_agent_to_consumer(wire: WireTask) -> None:
    stream = wire.streams.create(wire.task, format="bytes", subscribe_grace_ms=0)
    ref = wire.announced(stream.stream_id)
    assert ref.descriptor.local_direction == "inbound"
    reader = ref.open()
    payload = os.urandom(300_000)
    for i in range(0, len(payload), 7_000):
        stream.write(payload[i : i + 7_000])
    stream.end()
    assert reader.read_all(timeout=10) == payload


def test_events_stream_in_order(wire: WireTask) -> None:
    stream = wire.streams.create(wire.task, format="events", subscribe_grace_ms=0)
    reader = wire.announced(stream.stream_id).open()
    for i in range(2_000):
        stream.write({"i": i})
    stream.end()
    assert [e["i"] for e in reader.events(timeout=10)] == list(range(2_000))


def test_bidirectional_never_sees_its_own_echo(wire: WireTask) -> None:
    agent_side = wire.streams.create(
        wire.task, direction="bidirectional", format="events", subscribe_grace_ms=0
    )
    consumer = wire.announced(agent_side.stream_id).open()
    assert consumer.direction == "bidirectional"

    def agent_echo() -> None:
        for event in agent_side.events(timeout=10):
            agent_side.write({"echo": event["say"]})
            agent_side.flush()
            if event["say"] == "bye":
                return

    t = threading.Thread(target=agent_echo)
    t.start()
    got: list[object] = []
    for word in ("hi", "there", "bye"):
        consumer.write({"say": word})
        consumer.flush()
        got.append(next(consumer.events(timeout=10)))
    t.join(10)
    assert got == [{"echo": "hi"}, {"echo": "there"}, {"echo": "bye"}]


def test_streaming_not_negotiated_is_refused(network: LocalNetwork) -> None:
    task = start_wire_task(network, "w_nostream", stream=False)
    try:
        with pytest.raises(Exception, match="Streaming was not negotiated"):
            task.streams.create(task.task)
        forced = task.task.__class__(**{**task.task.__dict__, "has_stream": True})
        with pytest.raises(StreamSetupError, match="not negotiated") as info:
            task.streams.create(forced, subscribe_grace_ms=0)
        assert info.value.code == "FailedPrecondition"
    finally:
        task.close()


def test_revoked_token_is_a_fatal_access_denied_and_the_loop_exits(
    wire: WireTask, network: LocalNetwork
) -> None:
    stream = wire.streams.create(wire.task, format="events", subscribe_grace_ms=0, max_latency_ms=5)
    ref = wire.announced(stream.stream_id)
    reader = ref.open()
    errors: list[StreamError] = []
    reader.on_error(errors.append)
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            stream.write({"i": i})
            i += 1
            stop.wait(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        key, token = wire.keyset.subscribe_key, ref.descriptor.token
        seen = 0
        for _event in reader.events(timeout=10):
            seen += 1
            if seen == 5:
                network.call(lambda: network.context.realtime.access.revoke(key, token))
        assert seen >= 5
    finally:
        stop.set()
        producer.join(5)
    assert errors and errors[-1].category == "access_denied" and errors[-1].fatal
    assert reader.fatal_error is errors[-1]
    assert reader.finished


def test_bad_frames_on_the_wire_are_skipped(wire: WireTask) -> None:
    stream = wire.streams.create(wire.task, format="bytes", subscribe_grace_ms=0)
    reader = wire.announced(stream.stream_id).open()
    assert stream.token is not None
    publisher = wire.streams._link(wire.keyset).publisher()
    sid = stream.stream_id

    def raw(message: object) -> None:
        body = json.dumps(message).encode()
        reply = publisher.publish(stream.channel, body, user_id="intruder", token=stream.token)
        assert reply.status == 200, reply.text

    piece = split_frame(StreamDataFrame(sid, 1, 1, ("m" * 3000,)), max_message_size=2048)[0]
    raw({"type": "stream_data", "streamId": sid, "seq": "x"})  # malformed
    raw("just a string")  # not an object
    raw(StreamDataFrame("other-stream", 0, 1, ("wrong id",)).to_wire())  # another stream
    raw(StreamDataFrame(sid, 0, 1, ("a",)).to_wire())
    raw(StreamDataFrame(sid, 0, 1, ("a",)).to_wire())  # duplicate
    raw(piece.to_wire())  # truncated multipart for seq 1: never completes
    # Oversized claim: a "group" of 100 000 pieces that will never complete (for seq 1 too).
    raw({**piece.to_wire(), "multipart": {"id": "mp-huge", "part": 1, "total": 100_000}})
    raw(StreamDataFrame(sid, 3, 1, ("d",)).to_wire())  # out of order
    raw(StreamDataFrame(sid, 2, 1, ("c",)).to_wire())
    raw({"type": "stream_end", "streamId": sid, "seq": 4, "ts": 1})
    started = time.monotonic()
    assert list(reader.bytes(timeout=10)) == [b"a", b"c", b"d"]
    assert time.monotonic() - started < 5


def test_late_open_replays_a_finished_stream(wire: WireTask) -> None:
    stream = wire.streams.create(wire.task, format="events", subscribe_grace_ms=0)
    for i in range(50):
        stream.write({"i": i})
    stream.end()
    reader = wire.announced(stream.stream_id).open()
    assert [e["i"] for e in reader.events(timeout=10)] == list(range(50))


def test_writer_dying_mid_stream_ends_with_the_drain(wire: WireTask) -> None:
    stream = wire.streams.create(wire.task, format="events", subscribe_grace_ms=0, max_latency_ms=0)
    reader = wire.announced(stream.stream_id).open()
    stream.write({"i": 0})
    stream.write({"i": 1})
    assert stream.flush(5)
    stream.abort()  # no stream_end will ever come
    got = [next(reader.events(timeout=10)), next(reader.events(timeout=10))]
    late = drain_streams([reader], 0.3)
    assert late == [reader]
    assert got == [{"i": 0}, {"i": 1}]
    assert list(reader.events(timeout=5)) == []


def test_an_event_larger_than_a_message_travels_as_multipart(wire: WireTask) -> None:
    stream = wire.streams.create(wire.task, format="events", subscribe_grace_ms=0)
    reader = wire.announced(stream.stream_id).open()
    big = {"blob": "é" * 60_000, "n": 1}
    stream.write({"n": 0})
    stream.write(big)
    stream.write({"n": 2})
    stream.end()
    assert list(reader.events(timeout=10)) == [{"n": 0}, big, {"n": 2}]


def test_a_frame_the_server_refuses_as_too_large_is_logged_not_raised(
    wire: WireTask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Above PubNub's 32 KiB publish limit: the network answers 413; the writer goes on.
    monkeypatch.setenv("STREAM_MAX_MESSAGE_SIZE", "60000")
    stream = wire.streams.create(wire.task, format="bytes", subscribe_grace_ms=0, max_latency_ms=0)
    reader = wire.announced(stream.stream_id).open()
    stream.write(b"a")
    stream.write(b"z" * 40_000)  # one frame of ~53 KB: refused
    stream.write(b"b")
    stream.end()
    assert list(reader.bytes(timeout=10)) == [b"a", b"b"]
    assert "HTTP 413" in caplog.text
