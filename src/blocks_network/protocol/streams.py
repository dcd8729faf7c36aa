"""Stream data-plane frames (§8.3) on ``stream.{agentName}.{streamId}``.

``stream_data`` carries byte chunks (seq from 0), ``stream_events`` carries JSON events (seq
from 1), ``stream_end`` marks the end at the next seq. A frame too large for one publish travels
as several ``MultipartFrame`` pieces (see ``multipart``). ``parse_stream_frame`` returns None for
an unknown type so readers can pass it through raw.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias

from ._fields import (
    as_object,
    expect_type,
    opt_choice,
    opt_str,
    put,
    req_int,
    req_list,
    req_object,
    req_str,
)
from .constants import (
    PROTOCOL_VERSION,
    STREAM_BINARY_EVENT_KEY,
    STREAM_BYTES_FIRST_SEQ,
    STREAM_ENCODING_BASE64,
    STREAM_ENCODING_UTF8,
    STREAM_EVENTS_FIRST_SEQ,
)
from .errors import ProtocolError

__all__ = [
    "MultipartFrame",
    "StreamDataFrame",
    "StreamEndFrame",
    "StreamEventsFrame",
    "StreamFrame",
    "decode_binary_event",
    "encode_binary_event",
    "parse_stream_frame",
    "stream_frame_meta",
    "stream_sender_filter",
]

ChunkEncoding = Literal["utf8", "base64"]
_ENCODINGS: Final[tuple[ChunkEncoding, ...]] = ("utf8", "base64")


def stream_frame_meta(sender: str, protocol_version: str = PROTOCOL_VERSION) -> dict[str, str]:
    """PubNub meta of every stream publish: the sender's user id and the protocol version."""
    return {"sender": sender, "protocolVersion": protocol_version}


def stream_sender_filter(own_user_id: str) -> str:
    """Subscribe filter a bidirectional client sets so it does not read its own frames."""
    return f"meta.sender != '{own_user_id}'"


def encode_binary_event(data: bytes) -> dict[str, str]:
    """Encode bytes inside an events stream as ``{"$binary": "<base64>"}``."""
    return {STREAM_BINARY_EVENT_KEY: base64.b64encode(data).decode("ascii")}


def decode_binary_event(event: object) -> bytes | None:
    """Return the bytes of a ``{"$binary": ...}`` event, None for any other event.

    Raises ProtocolError if it has the binary shape but invalid base64.
    """
    if not isinstance(event, Mapping) or set(event) != {STREAM_BINARY_EVENT_KEY}:
        return None
    payload = event[STREAM_BINARY_EVENT_KEY]
    if not isinstance(payload, str):
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError("stream event $binary: not valid base64") from exc


def _frame_head(obj: Mapping[str, Any], where: str) -> tuple[str, int, int, str | None]:
    return (
        req_str(obj, "streamId", where),
        req_int(obj, "seq", where, minimum=0),
        req_int(obj, "ts", where, minimum=0),
        opt_str(obj, "protocolVersion", where),
    )


def _wire_head(type_: str, pv: str | None, stream_id: str, seq: int, ts: int) -> dict[str, Any]:
    wire: dict[str, Any] = {"type": type_}
    put(wire, "protocolVersion", pv)
    wire.update(streamId=stream_id, seq=seq, ts=ts)
    return wire


@dataclass(frozen=True)
class StreamDataFrame:
    """``stream_data``: a batch of byte chunks (``encoding`` utf8 = text, base64 = bytes)."""

    TYPE: ClassVar[str] = "stream_data"
    FIRST_SEQ: ClassVar[int] = STREAM_BYTES_FIRST_SEQ

    stream_id: str
    seq: int
    ts: int
    chunks: tuple[str, ...]
    encoding: ChunkEncoding = "utf8"
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> StreamDataFrame:
        """Parse; raises ProtocolError on a bad shape."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        stream_id, seq, ts, pv = _frame_head(obj, cls.TYPE)
        chunks = req_list(obj, "chunks", cls.TYPE)
        if not all(isinstance(c, str) for c in chunks):
            raise ProtocolError(f"{cls.TYPE}.chunks: every chunk must be a string")
        encoding = opt_choice(obj, "encoding", cls.TYPE, _ENCODINGS) or STREAM_ENCODING_UTF8
        return cls(stream_id, seq, ts, tuple(chunks), encoding, pv)

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire = _wire_head(self.TYPE, self.protocol_version, self.stream_id, self.seq, self.ts)
        wire.update(encoding=self.encoding, chunks=list(self.chunks))
        return wire

    def decode(self) -> bytes:
        """Return the batch as bytes (base64 chunks decoded one by one).

        Raises ProtocolError on a chunk that is not valid base64 in a base64 batch.
        """
        if self.encoding != STREAM_ENCODING_BASE64:
            return "".join(self.chunks).encode("utf-8")
        try:
            return b"".join(base64.b64decode(c, validate=True) for c in self.chunks)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"{self.TYPE} seq {self.seq}: chunk is not valid base64") from exc


@dataclass(frozen=True)
class StreamEventsFrame:
    """``stream_events``: a batch of JSON events (bytes appear as ``{"$binary": ...}``)."""

    TYPE: ClassVar[str] = "stream_events"
    FIRST_SEQ: ClassVar[int] = STREAM_EVENTS_FIRST_SEQ

    stream_id: str
    seq: int
    ts: int
    events: tuple[Any, ...]
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> StreamEventsFrame:
        """Parse; raises ProtocolError on a bad shape."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        stream_id, seq, ts, pv = _frame_head(obj, cls.TYPE)
        opt_choice(obj, "encoding", cls.TYPE, ("utf8",))
        return cls(stream_id, seq, ts, tuple(req_list(obj, "events", cls.TYPE)), pv)

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object (``encoding`` is always ``utf8``)."""
        wire = _wire_head(self.TYPE, self.protocol_version, self.stream_id, self.seq, self.ts)
        wire.update(encoding=STREAM_ENCODING_UTF8, events=list(self.events))
        return wire


@dataclass(frozen=True)
class StreamEndFrame:
    """``stream_end``: no frame with ``seq`` ≥ this one's will follow."""

    TYPE: ClassVar[str] = "stream_end"

    stream_id: str
    seq: int
    ts: int
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> StreamEndFrame:
        """Parse; raises ProtocolError on a bad shape (``seq`` must be an integer)."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        stream_id, seq, ts, pv = _frame_head(obj, cls.TYPE)
        return cls(stream_id, seq, ts, pv)

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        return _wire_head(self.TYPE, self.protocol_version, self.stream_id, self.seq, self.ts)


@dataclass(frozen=True)
class MultipartFrame:
    """One piece of a frame too large to publish whole.

    ``frame_type``/``seq`` are the original frame's; ``data`` is base64 of piece ``part`` (1-based)
    of the original frame's UTF-8 JSON; pieces sharing ``multipart_id`` reassemble to it.
    """

    frame_type: str
    stream_id: str
    seq: int
    ts: int
    multipart_id: str
    part: int
    total: int
    data: str
    protocol_version: str | None = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if self.total < 2 or not 1 <= self.part <= self.total:
            raise ProtocolError(
                f"multipart: need total ≥ 2 and 1 ≤ part ≤ total, got part {self.part} "
                f"of {self.total}"
            )

    @classmethod
    def from_wire(cls, value: object) -> MultipartFrame:
        """Parse; raises ProtocolError on a bad shape or inconsistent part numbers."""
        w = "multipart frame"
        obj = as_object(value, w)
        frame_type = req_str(obj, "type", w)
        stream_id, seq, ts, pv = _frame_head(obj, w)
        mp = req_object(obj, "multipart", w)
        return cls(
            frame_type=frame_type,
            stream_id=stream_id,
            seq=seq,
            ts=ts,
            multipart_id=req_str(mp, "id", f"{w}.multipart"),
            part=req_int(mp, "part", f"{w}.multipart"),
            total=req_int(mp, "total", f"{w}.multipart"),
            data=req_str(obj, "data", w, non_empty=False),
            protocol_version=pv,
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire = _wire_head(self.frame_type, self.protocol_version, self.stream_id, self.seq, self.ts)
        wire["multipart"] = {"id": self.multipart_id, "part": self.part, "total": self.total}
        wire["data"] = self.data
        return wire


StreamFrame: TypeAlias = StreamDataFrame | StreamEventsFrame | StreamEndFrame | MultipartFrame

_PARSERS: Final[dict[str, Callable[[object], StreamFrame]]] = {
    StreamDataFrame.TYPE: StreamDataFrame.from_wire,
    StreamEventsFrame.TYPE: StreamEventsFrame.from_wire,
    StreamEndFrame.TYPE: StreamEndFrame.from_wire,
}


def parse_stream_frame(value: object) -> StreamFrame | None:
    """Parse a message received on a stream channel.

    Any message with a ``multipart`` member is a MultipartFrame; otherwise the ``type`` picks
    the frame class. Returns None for an unknown or missing type (callers may pass it through
    raw); raises ProtocolError for a malformed known frame.
    """
    obj = as_object(value, "stream frame")
    if obj.get("multipart") is not None:
        return MultipartFrame.from_wire(obj)
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    return None if parser is None else parser(obj)
