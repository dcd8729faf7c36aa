"""Multipart stream frames (§8.3): splitting an oversized frame and reassembling its pieces.

A frame whose compact UTF-8 JSON exceeds the max message size is cut into pieces of
``floor((max - 512) * 3 / 4)`` bytes, each published base64-encoded in a MultipartFrame with
id ``mp-{ms}-{seq}``. The assembler is pure: the caller passes the clock in.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any

from .constants import (
    MULTIPART_GROUP_TTL_S,
    MULTIPART_MAX_PENDING_GROUPS,
    MULTIPART_OVERHEAD_BYTES,
    STREAM_MAX_MESSAGE_SIZE_BYTES,
)
from .errors import ProtocolError
from .streams import MultipartFrame, StreamDataFrame, StreamEndFrame, StreamEventsFrame

__all__ = [
    "MultipartAssembler",
    "encode_frame_json",
    "multipart_id",
    "multipart_piece_size",
    "split_frame",
]

SplittableFrame = StreamDataFrame | StreamEventsFrame | StreamEndFrame


def encode_frame_json(wire: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a wire frame: the bytes whose size decides splitting."""
    return json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def multipart_piece_size(max_message_size: int) -> int:
    """Raw bytes per piece for ``max_message_size``; raises ProtocolError if it leaves none."""
    size = (max_message_size - MULTIPART_OVERHEAD_BYTES) * 3 // 4
    if size <= 0:
        raise ProtocolError(
            f"max message size {max_message_size} is too small: it must exceed "
            f"{MULTIPART_OVERHEAD_BYTES} bytes"
        )
    return size


def multipart_id(now_ms: int, seq: int) -> str:
    """The group id of a split frame: ``mp-{epoch ms}-{seq}``."""
    return f"mp-{now_ms}-{seq}"


def split_frame(
    frame: SplittableFrame,
    *,
    max_message_size: int = STREAM_MAX_MESSAGE_SIZE_BYTES,
    now_ms: int | None = None,
) -> list[SplittableFrame | MultipartFrame]:
    """Return ``[frame]`` if it fits in one message, else its MultipartFrame pieces in order."""
    payload = encode_frame_json(frame.to_wire())
    if len(payload) <= max_message_size:
        return [frame]
    piece = multipart_piece_size(max_message_size)
    chunks = [payload[i : i + piece] for i in range(0, len(payload), piece)]
    group = multipart_id(int(time.time() * 1000) if now_ms is None else now_ms, frame.seq)
    return [
        MultipartFrame(
            frame_type=frame.TYPE,
            stream_id=frame.stream_id,
            seq=frame.seq,
            ts=frame.ts,
            multipart_id=group,
            part=index,
            total=len(chunks),
            data=base64.b64encode(chunk).decode("ascii"),
            protocol_version=frame.protocol_version,
        )
        for index, chunk in enumerate(chunks, start=1)
    ]


@dataclass
class _Group:
    frame_type: str
    seq: int
    total: int
    created_s: float
    parts: dict[int, str] = field(default_factory=dict)


class MultipartAssembler:
    """Reassembles MultipartFrame pieces into the original wire frame.

    Groups are keyed by (streamId, multipart id), expire ``ttl_s`` after their first piece, and
    at most ``max_groups`` are pending (the oldest is dropped to make room). Not thread-safe:
    one reader owns one assembler.
    """

    def __init__(
        self,
        *,
        ttl_s: float = MULTIPART_GROUP_TTL_S,
        max_groups: int = MULTIPART_MAX_PENDING_GROUPS,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_groups = max_groups
        self._groups: dict[tuple[str, str], _Group] = {}

    @property
    def pending(self) -> int:
        """Number of incomplete groups held."""
        return len(self._groups)

    def add(self, piece: MultipartFrame, now_s: float) -> dict[str, Any] | None:
        """Add one piece; return the reassembled wire frame when its group completes.

        An identical duplicate piece is ignored. Raises ProtocolError (and drops the group)
        when a piece conflicts with its group (type, seq, total or a different duplicate) or
        the completed payload is not a JSON object.
        """
        self._expire(now_s)
        key = (piece.stream_id, piece.multipart_id)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self._max_groups:
                del self._groups[next(iter(self._groups))]
            group = _Group(piece.frame_type, piece.seq, piece.total, now_s)
            self._groups[key] = group
        if (piece.frame_type, piece.seq, piece.total) != (group.frame_type, group.seq, group.total):
            del self._groups[key]
            raise ProtocolError(
                f"multipart {piece.multipart_id}: piece disagrees with its group "
                "(type, seq or total); group dropped"
            )
        known = group.parts.get(piece.part)
        if known is not None:
            if known != piece.data:
                del self._groups[key]
                raise ProtocolError(
                    f"multipart {piece.multipart_id}: conflicting duplicate of part "
                    f"{piece.part}; group dropped"
                )
            return None
        group.parts[piece.part] = piece.data
        if len(group.parts) < group.total:
            return None
        del self._groups[key]
        return _join(piece.multipart_id, group)

    def _expire(self, now_s: float) -> None:
        stale = [k for k, g in self._groups.items() if now_s - g.created_s >= self._ttl_s]
        for key in stale:
            del self._groups[key]


def _join(group_id: str, group: _Group) -> dict[str, Any]:
    try:
        raw = b"".join(
            base64.b64decode(group.parts[i], validate=True) for i in range(1, group.total + 1)
        )
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"multipart {group_id}: reassembled payload is not JSON") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"multipart {group_id}: reassembled payload is not a JSON object")
    return value
