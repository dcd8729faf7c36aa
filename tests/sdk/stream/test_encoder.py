"""Frame encoding: seq rules, formats, size-bounded frames, multipart for what cannot be cut."""

from __future__ import annotations

import base64
import json
import time

import pytest

from blocks_network.protocol import MultipartAssembler, parse_stream_frame
from blocks_network.protocol.streams import (
    MultipartFrame,
    StreamDataFrame,
    StreamEndFrame,
    StreamEventsFrame,
)
from blocks_network.stream.encoder import FrameEncoder, serialize_event


def parsed(bodies: list[bytes]) -> list[object]:
    return [parse_stream_frame(json.loads(b)) for b in bodies]


def reassemble(bodies: list[bytes]) -> list[object]:
    assembler = MultipartAssembler()
    out: list[object] = []
    for frame in parsed(bodies):
        if isinstance(frame, MultipartFrame):
            whole = assembler.add(frame, time.monotonic())
            if whole is not None:
                out.append(parse_stream_frame(whole))
        else:
            out.append(frame)
    return out


def all_bodies(frames: list) -> list[bytes]:  # type: ignore[type-arg]
    return [b for f in frames for b in f.bodies]


def test_bytes_seq_starts_at_zero_and_end_takes_the_next() -> None:
    enc = FrameEncoder("t-1", "bytes", 16_384)
    frames = enc.encode_chunks(["hello "]) + enc.encode_chunks([b"\x00\x01"])
    assert [f.seq for f in frames] == [0, 1]
    first, second = parsed(all_bodies(frames))
    assert isinstance(first, StreamDataFrame) and first.encoding == "utf8"
    assert first.chunks == ("hello ",)
    assert isinstance(second, StreamDataFrame) and second.encoding == "base64"
    assert second.decode() == b"\x00\x01"
    end = parse_stream_frame(json.loads(enc.encode_end()))
    assert isinstance(end, StreamEndFrame) and end.seq == 2 and end.stream_id == "t-1"


def test_events_seq_starts_at_one() -> None:
    enc = FrameEncoder("t-1", "events", 16_384)
    frames = enc.encode_events([serialize_event({"n": 1}), serialize_event([2])])
    assert [f.seq for f in frames] == [1]
    (frame,) = parsed(all_bodies(frames))
    assert isinstance(frame, StreamEventsFrame)
    assert frame.events == ({"n": 1}, [2])
    assert json.loads(enc.encode_end())["seq"] == 2


def test_frame_text_matches_the_protocol_wire_shape() -> None:
    enc = FrameEncoder("s", "events", 16_384)
    (frame,) = enc.encode_events([serialize_event({"a": "é"})])
    wire = json.loads(frame.bodies[0])
    assert list(wire) == ["type", "protocolVersion", "streamId", "seq", "ts", "encoding", "events"]
    assert wire == StreamEventsFrame.from_wire(wire).to_wire()


def test_mixed_text_and_bytes_batch_is_all_base64() -> None:
    enc = FrameEncoder("s", "bytes", 16_384)
    (frame,) = enc.encode_chunks(["héllo ", b"\xff\x00", "!"])
    (data,) = parsed(list(frame.bodies))
    assert isinstance(data, StreamDataFrame) and data.encoding == "base64"
    assert data.decode() == "héllo ".encode() + b"\xff\x00!"


@pytest.mark.parametrize("payload", [bytes(range(256)) * 400, "x" * 100_000, 'é"\n' * 20_000])
def test_large_batches_are_cut_into_frames_that_fit(payload: str | bytes) -> None:
    enc = FrameEncoder("s", "bytes", 16_384)
    frames = enc.encode_chunks([payload])
    assert len(frames) > 1
    assert all(len(f.bodies) == 1 and len(f.bodies[0]) <= 16_384 for f in frames)
    assert [f.seq for f in frames] == list(range(len(frames)))
    decoded = b"".join(p.decode() for p in parsed(all_bodies(frames)))  # type: ignore[union-attr]
    assert decoded == (payload if isinstance(payload, bytes) else payload.encode())


def test_an_event_larger_than_a_message_is_sent_as_multipart() -> None:
    enc = FrameEncoder("s", "events", 4_096)
    big = {"blob": "y" * 20_000}
    frames = enc.encode_events([serialize_event({"small": 1}), serialize_event(big)])
    assert len(frames) == 2
    assert len(frames[1].bodies) > 1
    assert all(len(b) <= 4_096 for b in frames[1].bodies)
    pieces = parsed(list(frames[1].bodies))
    assert all(isinstance(p, MultipartFrame) and p.seq == 2 for p in pieces)
    # Pieces reassemble in any order.
    out = reassemble(list(reversed(all_bodies(frames))))
    events = [e for f in out for e in f.events]  # type: ignore[attr-defined]
    assert sorted(json.dumps(e) for e in events) == sorted(
        json.dumps(e) for e in ({"small": 1}, big)
    )


def test_many_small_events_fill_frames_up_to_the_limit() -> None:
    enc = FrameEncoder("s", "events", 2_048)
    events = [serialize_event({"i": i, "pad": "p" * 30}) for i in range(500)]
    frames = enc.encode_events(events)
    assert all(len(f.bodies) == 1 and len(f.bodies[0]) <= 2_048 for f in frames)
    seen = [e["i"] for f in parsed(all_bodies(frames)) for e in f.events]  # type: ignore[union-attr]
    assert seen == list(range(500))


def test_serialize_event_rules() -> None:
    assert serialize_event(b"\x01") == json.dumps(
        {"$binary": base64.b64encode(b"\x01").decode()}, separators=(",", ":")
    )
    with pytest.raises(TypeError, match="raw strings"):
        serialize_event("text")
    with pytest.raises(TypeError, match="not JSON-serializable"):
        serialize_event({"x": object()})
    with pytest.raises(TypeError, match="not JSON-serializable"):
        serialize_event(float("nan"))
