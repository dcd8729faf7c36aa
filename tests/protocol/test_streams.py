"""Stream frames (protocol §8.3) and multipart splitting/reassembly."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from blocks_network.protocol import (
    MultipartAssembler,
    MultipartFrame,
    ProtocolError,
    StreamDataFrame,
    StreamEndFrame,
    StreamEventsFrame,
    StreamFrame,
    decode_binary_event,
    encode_binary_event,
    encode_frame_json,
    multipart_piece_size,
    parse_stream_frame,
    split_frame,
    stream_frame_meta,
    stream_sender_filter,
)

FRAMES: list[StreamFrame] = [
    StreamDataFrame("t-1", 0, 1717000000000, ("hello ", "world")),
    StreamDataFrame("t-1", 1, 1, (base64.b64encode(b"\x00\xff").decode(),), encoding="base64"),
    StreamEventsFrame("t-1", 1, 2, ({"delta": "x"}, 3, None, encode_binary_event(b"\x01"))),
    StreamEndFrame("t-1", 5, 3),
    StreamEndFrame("t-1", 0, 3, protocol_version=None),
    MultipartFrame("stream_data", "t-1", 4, 5, "mp-1-4", part=2, total=3, data="eyJ9"),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_round_trip(frame: StreamFrame) -> None:
    assert parse_stream_frame(frame.to_wire()) == frame


def test_wire_shapes() -> None:
    assert StreamDataFrame("s", 0, 9, ("a",)).to_wire() == {
        "type": "stream_data",
        "protocolVersion": "2026-05-01",
        "streamId": "s",
        "seq": 0,
        "ts": 9,
        "encoding": "utf8",
        "chunks": ["a"],
    }
    assert StreamEventsFrame("s", 1, 9, (1,)).to_wire()["encoding"] == "utf8"
    assert StreamEndFrame("s", 3, 9).to_wire() == {
        "type": "stream_end",
        "protocolVersion": "2026-05-01",
        "streamId": "s",
        "seq": 3,
        "ts": 9,
    }
    assert MultipartFrame("stream_events", "s", 2, 9, "mp-9-2", 1, 2, "QQ==").to_wire() == {
        "type": "stream_events",
        "protocolVersion": "2026-05-01",
        "streamId": "s",
        "seq": 2,
        "ts": 9,
        "multipart": {"id": "mp-9-2", "part": 1, "total": 2},
        "data": "QQ==",
    }


def test_first_seq_per_format() -> None:
    assert StreamDataFrame.FIRST_SEQ == 0
    assert StreamEventsFrame.FIRST_SEQ == 1


def test_decode_data_frames() -> None:
    assert StreamDataFrame("s", 0, 0, ("hé", "llo")).decode() == "héllo".encode()
    b64 = (base64.b64encode(b"\x00").decode(), base64.b64encode(b"\x01\x02").decode())
    assert StreamDataFrame("s", 0, 0, b64, encoding="base64").decode() == b"\x00\x01\x02"
    with pytest.raises(ProtocolError, match="base64"):
        StreamDataFrame("s", 0, 0, ("plain text",), encoding="base64").decode()


def test_binary_events() -> None:
    event = encode_binary_event(b"\xde\xad")
    assert event == {"$binary": "3q0="}
    assert decode_binary_event(event) == b"\xde\xad"
    assert decode_binary_event({"$binary": "3q0=", "x": 1}) is None
    assert decode_binary_event("3q0=") is None
    with pytest.raises(ProtocolError):
        decode_binary_event({"$binary": "%%%"})


def test_unknown_frames_pass_through() -> None:
    assert parse_stream_frame({"type": "stream_ping", "seq": 3}) is None
    assert parse_stream_frame({"seq": 3}) is None
    with pytest.raises(ProtocolError):
        parse_stream_frame("stream_data")


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"type": "stream_end", "streamId": "s", "ts": 1}, "seq: missing"),
        ({"type": "stream_end", "streamId": "s", "seq": "3", "ts": 1}, "seq: expected an integer"),
        ({"type": "stream_end", "streamId": "s", "seq": True, "ts": 1}, "seq: expected an integer"),
        ({"type": "stream_end", "streamId": "s", "seq": -1, "ts": 1}, "seq: must be ≥ 0"),
        ({"type": "stream_data", "streamId": "s", "seq": 0, "ts": 1}, "chunks: missing"),
        (
            {"type": "stream_data", "streamId": "s", "seq": 0, "ts": 1, "chunks": [1]},
            "every chunk must be a string",
        ),
        (
            {
                "type": "stream_data",
                "streamId": "s",
                "seq": 0,
                "ts": 1,
                "chunks": [],
                "encoding": "hex",
            },
            "encoding: must be one of",
        ),
        ({"type": "stream_events", "streamId": "s", "seq": 1, "ts": 1}, "events: missing"),
        (
            {
                "type": "stream_data",
                "streamId": "s",
                "seq": 0,
                "ts": 1,
                "data": "",
                "multipart": {"id": "m", "part": 3, "total": 2},
            },
            "1 ≤ part ≤ total",
        ),
        (
            {
                "type": "stream_data",
                "streamId": "s",
                "seq": 0,
                "ts": 1,
                "data": "",
                "multipart": {"id": "m", "part": 1, "total": 1},
            },
            "total ≥ 2",
        ),
        (
            {
                "type": "stream_data",
                "streamId": "s",
                "seq": 0,
                "ts": 1,
                "multipart": {"id": "m", "part": 1, "total": 2},
            },
            "data: missing",
        ),
    ],
)
def test_parse_errors(wire: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_stream_frame(wire)


def test_meta_and_filter() -> None:
    assert stream_frame_meta("echo-stream-0001") == {
        "sender": "echo-stream-0001",
        "protocolVersion": "2026-05-01",
    }
    assert stream_sender_filter("u-stream-0002") == "meta.sender != 'u-stream-0002'"


# --- multipart ----------------------------------------------------------------------------


def _big_events_frame(n: int) -> StreamEventsFrame:
    return StreamEventsFrame("t-1", 7, 1717, tuple({"i": i, "text": "é" * 50} for i in range(n)))


def test_small_frames_are_not_split() -> None:
    frame = StreamEndFrame("s", 1, 1)
    assert split_frame(frame) == [frame]


def test_piece_size_formula() -> None:
    assert multipart_piece_size(16384) == (16384 - 512) * 3 // 4 == 11904
    with pytest.raises(ProtocolError, match="too small"):
        multipart_piece_size(512)


def test_split_then_reassemble_in_any_order() -> None:
    frame = _big_events_frame(400)
    pieces = split_frame(frame, max_message_size=4096, now_ms=99)
    assert len(pieces) > 2
    assert all(isinstance(p, MultipartFrame) for p in pieces)
    multipart = [p for p in pieces if isinstance(p, MultipartFrame)]
    assert {p.multipart_id for p in multipart} == {"mp-99-7"}
    assert [p.part for p in multipart] == list(range(1, len(multipart) + 1))
    for piece in multipart:
        assert len(encode_frame_json(piece.to_wire())) <= 4096
        assert (piece.frame_type, piece.seq, piece.total) == ("stream_events", 7, len(multipart))
    assembler = MultipartAssembler()
    results = [assembler.add(p, now_s=0.0) for p in reversed(multipart)]
    assert results[:-1] == [None] * (len(multipart) - 1)
    assert results[-1] is not None
    assert parse_stream_frame(results[-1]) == frame
    assert assembler.pending == 0


def test_pieces_survive_the_wire() -> None:
    pieces = split_frame(_big_events_frame(200), max_message_size=2048, now_ms=1)
    assembler = MultipartAssembler()
    out = None
    for piece in pieces:
        parsed = parse_stream_frame(json.loads(json.dumps(piece.to_wire())))
        assert isinstance(parsed, MultipartFrame)
        out = assembler.add(parsed, now_s=1.0) or out
    assert out == _big_events_frame(200).to_wire()


def _pieces(seq: int = 7) -> list[MultipartFrame]:
    frame = StreamEventsFrame("t-1", seq, 1, tuple(range(2000)))
    return [
        p
        for p in split_frame(frame, max_message_size=1024, now_ms=5)
        if isinstance(p, MultipartFrame)
    ]


def test_identical_duplicate_is_ignored() -> None:
    pieces = _pieces()
    assembler = MultipartAssembler()
    assert assembler.add(pieces[0], 0.0) is None
    assert assembler.add(pieces[0], 0.0) is None
    out = None
    for piece in pieces[1:]:
        out = assembler.add(piece, 0.0)
    assert out is not None


def test_conflicting_duplicate_drops_the_group() -> None:
    pieces = _pieces()
    assembler = MultipartAssembler()
    assembler.add(pieces[0], 0.0)
    forged = MultipartFrame(**{**pieces[0].__dict__, "data": "QUJD"})
    with pytest.raises(ProtocolError, match="conflicting duplicate"):
        assembler.add(forged, 0.0)
    assert assembler.pending == 0


def test_inconsistent_piece_drops_the_group() -> None:
    pieces = _pieces()
    assembler = MultipartAssembler()
    assembler.add(pieces[0], 0.0)
    other_seq = MultipartFrame(**{**pieces[1].__dict__, "seq": 8})
    with pytest.raises(ProtocolError, match="disagrees"):
        assembler.add(other_seq, 0.0)
    assert assembler.pending == 0


def test_groups_expire_after_ttl() -> None:
    pieces = _pieces()
    assembler = MultipartAssembler(ttl_s=30.0)
    assembler.add(pieces[0], now_s=0.0)
    assert assembler.pending == 1
    # A later piece after the TTL starts a fresh group, so the frame never completes.
    for piece in pieces[1:]:
        assert assembler.add(piece, now_s=31.0) is None
    assert assembler.pending == 1


def test_pending_groups_are_bounded() -> None:
    assembler = MultipartAssembler(max_groups=2)
    for seq in (1, 2, 3):
        assembler.add(_pieces(seq)[0], 0.0)
    assert assembler.pending == 2
    # The oldest (seq 1) was evicted: completing it now is impossible.
    out = None
    for piece in _pieces(1)[1:]:
        out = assembler.add(piece, 0.0)
    assert out is None


def test_non_json_payload_is_rejected() -> None:
    assembler = MultipartAssembler()
    a = MultipartFrame("stream_data", "s", 1, 1, "mp-1-1", 1, 2, base64.b64encode(b"{no").decode())
    b = MultipartFrame("stream_data", "s", 1, 1, "mp-1-1", 2, 2, base64.b64encode(b"pe").decode())
    assembler.add(a, 0.0)
    with pytest.raises(ProtocolError, match="not JSON"):
        assembler.add(b, 0.0)
