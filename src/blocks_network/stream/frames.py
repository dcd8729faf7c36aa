"""What a stream reader hands out: :class:`InboundFrame`, one in-order frame of a stream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blocks_network.protocol.streams import (
    StreamDataFrame,
    StreamEventsFrame,
    decode_binary_event,
)

__all__ = ["InboundFrame"]


@dataclass(frozen=True)
class InboundFrame:
    """One frame as received (after multipart reassembly and reordering).

    ``type`` is ``stream_data``, ``stream_events`` or an unknown type passed through raw;
    ``encoding`` is ``utf8``/``base64`` for data frames. ``data`` holds the decoded bytes of a
    data frame, ``events`` the events of an events frame (``{"$binary": ...}`` left as is), and
    ``raw`` the wire object. ``publisher`` is the sending client's user id when known.
    """

    type: str
    seq: int
    ts: int | None
    encoding: str | None = None
    chunks: tuple[str, ...] = ()
    events: tuple[Any, ...] = ()
    data: bytes = b""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    publisher: str | None = None
    timetoken: int | None = None

    @classmethod
    def from_data(
        cls,
        frame: StreamDataFrame,
        data: bytes,
        raw: Mapping[str, Any],
        publisher: str | None,
        timetoken: int | None,
    ) -> InboundFrame:
        """Wrap a parsed ``stream_data`` frame whose chunks decoded to ``data``."""
        return cls(
            type=frame.TYPE,
            seq=frame.seq,
            ts=frame.ts,
            encoding=frame.encoding,
            chunks=frame.chunks,
            data=data,
            raw=raw,
            publisher=publisher,
            timetoken=timetoken,
        )

    @classmethod
    def from_events(
        cls,
        frame: StreamEventsFrame,
        raw: Mapping[str, Any],
        publisher: str | None,
        timetoken: int | None,
    ) -> InboundFrame:
        """Wrap a parsed ``stream_events`` frame."""
        return cls(
            type=frame.TYPE,
            seq=frame.seq,
            ts=frame.ts,
            encoding="utf8",
            events=frame.events,
            raw=raw,
            publisher=publisher,
            timetoken=timetoken,
        )

    def decoded_events(self) -> list[Any]:
        """The events with ``{"$binary": ...}`` turned back into bytes.

        Raises ProtocolError for a ``$binary`` event that is not valid base64.
        """
        out: list[Any] = []
        for event in self.events:
            binary = decode_binary_event(event)
            out.append(event if binary is None else binary)
        return out
