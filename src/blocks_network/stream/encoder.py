"""Turning buffered writes into stream frames (protocol §8.3), as ready-to-publish JSON bodies.

Pure (no I/O, no threads). Seq numbers start at 0 for ``stream_data`` and 1 for
``stream_events``; ``stream_end`` takes the next seq. A batch is cut into as many frames as
needed so that each fits in one message; only what cannot be cut (a single huge event) is sent
as multipart pieces with the protocol's ``split_frame``. Frames are written as JSON text
directly, in the key order of the protocol's ``to_wire`` (events are serialized once, at
``write`` time).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from blocks_network.protocol.constants import (
    PROTOCOL_VERSION,
    STREAM_ENCODING_BASE64,
    STREAM_ENCODING_UTF8,
    StreamFormat,
)
from blocks_network.protocol.multipart import encode_frame_json, split_frame
from blocks_network.protocol.streams import (
    StreamDataFrame,
    StreamEndFrame,
    StreamEventsFrame,
    encode_binary_event,
)

__all__ = ["EncodedFrame", "FrameEncoder", "serialize_event"]

#: Room kept for the widest ``seq`` and ``ts`` values when sizing a frame's fixed part.
_WIDE_SEQ: Final = 10**15
_WIDE_TS: Final = 10**13


def serialize_event(event: object) -> str:
    """Compact JSON of one event; bytes become ``{"$binary": ...}``.

    Raises TypeError for a bare string (events are JSON values, not text: send
    ``{"text": ...}``, or use a bytes stream) or a value JSON cannot encode.
    """
    if isinstance(event, str):
        raise TypeError(
            "an events stream carries JSON values, not raw strings: write {'text': ...} "
            "instead, or create the stream with format='bytes'"
        )
    if isinstance(event, (bytes, bytearray, memoryview)):
        event = encode_binary_event(bytes(event))
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"stream event is not JSON-serializable: {exc}") from exc


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass(frozen=True)
class EncodedFrame:
    """One frame ready to publish: a single body, or its multipart pieces (any order)."""

    seq: int
    bodies: tuple[bytes, ...]

    @property
    def size(self) -> int:
        """Total bytes published for this frame."""
        return sum(len(b) for b in self.bodies)


class FrameEncoder:
    """Assigns seq numbers and builds frame bodies for one stream. Not thread-safe."""

    def __init__(
        self,
        stream_id: str,
        format: StreamFormat,
        max_message_size: int,
        *,
        protocol_version: str = PROTOCOL_VERSION,
    ) -> None:
        self.stream_id = stream_id
        self.format = format
        self.max_message_size = max_message_size
        self._pv = protocol_version
        first = StreamEventsFrame.FIRST_SEQ if format == "events" else StreamDataFrame.FIRST_SEQ
        self.next_seq = first
        self._sid_json = json.dumps(stream_id)
        self._pv_json = json.dumps(protocol_version)

    def _head(self, frame_type: str, seq: int, ts: int) -> str:
        return (
            f'{{"type":"{frame_type}","protocolVersion":{self._pv_json},'
            f'"streamId":{self._sid_json},"seq":{seq},"ts":{ts}'
        )

    def _room(self, frame_type: str, tail: str) -> int:
        """Bytes left for the payload once the frame's fixed part is counted."""
        return self.max_message_size - len(self._head(frame_type, _WIDE_SEQ, _WIDE_TS) + tail)

    def _take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    # --- stream_data ------------------------------------------------------------------

    def encode_chunks(self, chunks: Sequence[str | bytes]) -> list[EncodedFrame]:
        """Frames for buffered byte-stream writes: text only → ``utf8``, any bytes → ``base64``
        (text chunks are then UTF-8 encoded too, so every chunk decodes the same way)."""
        if not chunks:
            return []
        if all(isinstance(c, str) for c in chunks):
            return self._text_frames("".join(c for c in chunks if isinstance(c, str)))
        blob = b"".join(c.encode("utf-8") if isinstance(c, str) else c for c in chunks)
        return self._binary_frames(blob)

    def _binary_frames(self, blob: bytes) -> list[EncodedFrame]:
        tail = ',"encoding":"base64","chunks":[""]}'
        # Whole base64 quanta, so each piece encodes without padding except the last.
        per_frame = max(3, self._room(StreamDataFrame.TYPE, tail) // 4 * 3)
        frames: list[EncodedFrame] = []
        ts = _now_ms()
        for start in range(0, len(blob), per_frame):
            piece = base64.b64encode(blob[start : start + per_frame]).decode("ascii")
            frames.append(self._data_frame(STREAM_ENCODING_BASE64, f'"{piece}"', piece, ts))
        return frames

    def _text_frames(self, text: str) -> list[EncodedFrame]:
        tail = ',"encoding":"utf8","chunks":[]}'
        room = max(64, self._room(StreamDataFrame.TYPE, tail))
        frames: list[EncodedFrame] = []
        ts = _now_ms()
        for piece in _cut_text(text, room):
            encoded = json.dumps(piece, ensure_ascii=False)
            frames.append(self._data_frame(STREAM_ENCODING_UTF8, encoded, piece, ts))
        return frames

    def _data_frame(self, encoding: str, chunk_json: str, chunk: str, ts: int) -> EncodedFrame:
        seq = self._take_seq()
        text = (
            f'{self._head(StreamDataFrame.TYPE, seq, ts)},"encoding":"{encoding}",'
            f'"chunks":[{chunk_json}]}}'
        )
        body = text.encode("utf-8")
        if len(body) <= self.max_message_size:
            return EncodedFrame(seq, (body,))
        frame = StreamDataFrame(
            self.stream_id,
            seq,
            ts,
            (chunk,),
            "base64" if encoding == "base64" else "utf8",
            self._pv,
        )
        return self._split(frame)

    # --- stream_events ----------------------------------------------------------------

    def encode_events(self, events: Sequence[str]) -> list[EncodedFrame]:
        """Frames for serialized events (see :func:`serialize_event`), in order."""
        tail = ',"encoding":"utf8","events":[]}'
        room = self._room(StreamEventsFrame.TYPE, tail)
        frames: list[EncodedFrame] = []
        ts = _now_ms()
        batch: list[str] = []
        used = 0
        for event in events:
            size = _utf8_len(event) + 1
            if batch and used + size > room:
                frames.append(self._events_frame(batch, ts))
                batch, used = [], 0
            batch.append(event)
            used += size
        if batch:
            frames.append(self._events_frame(batch, ts))
        return frames

    def _events_frame(self, events: list[str], ts: int) -> EncodedFrame:
        seq = self._take_seq()
        text = (
            f'{self._head(StreamEventsFrame.TYPE, seq, ts)},"encoding":"utf8",'
            f'"events":[{",".join(events)}]}}'
        )
        body = text.encode("utf-8")
        if len(body) <= self.max_message_size:
            return EncodedFrame(seq, (body,))
        values: tuple[Any, ...] = tuple(json.loads(e) for e in events)
        return self._split(StreamEventsFrame(self.stream_id, seq, ts, values, self._pv))

    # --- end and multipart ------------------------------------------------------------

    def encode_end(self) -> bytes:
        """The ``stream_end`` body at the next seq (the seq is not consumed twice)."""
        frame = StreamEndFrame(self.stream_id, self.next_seq, _now_ms(), self._pv)
        return encode_frame_json(frame.to_wire())

    def _split(self, frame: StreamDataFrame | StreamEventsFrame) -> EncodedFrame:
        pieces = split_frame(frame, max_message_size=self.max_message_size)
        return EncodedFrame(frame.seq, tuple(encode_frame_json(p.to_wire()) for p in pieces))


def _cut_text(text: str, room: int) -> list[str]:
    """Cut ``text`` so each piece's JSON string literal fits in ``room`` UTF-8 bytes."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        take = min(len(text) - start, room)
        while take > 1:
            size = len(json.dumps(text[start : start + take], ensure_ascii=False).encode("utf-8"))
            if size <= room:
                break
            # Shrink in proportion to the overshoot (escapes and multi-byte characters).
            take = max(1, min(take - 1, take * room // size))
        pieces.append(text[start : start + take])
        start += take
    return pieces


def _now_ms() -> int:
    return int(time.time() * 1000)
