"""What a consumer knows about one announced stream (protocol §8.5).

The agent announces streams with a ``stream_started`` progress event; each entry becomes a
:class:`StreamDescriptor`. Directions are stated from both sides: ``agent_direction`` as the
agent declared it, ``local_direction`` as seen by whoever holds the descriptor (inverted for a
consumer: agent outbound → consumer inbound, inbound → outbound, bidirectional stays).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blocks_network.protocol.channels import parse_stream_channel
from blocks_network.protocol.constants import StreamAffinity, StreamDirection, StreamFormat
from blocks_network.protocol.stream_setup import StreamAnnouncement, invert_direction

__all__ = ["StreamDescriptor"]

_READABLE: frozenset[str] = frozenset({"inbound", "bidirectional"})
_WRITABLE: frozenset[str] = frozenset({"outbound", "bidirectional"})


@dataclass(frozen=True)
class StreamDescriptor:
    """One stream of a task: where it is, how to reach it and what it carries.

    ``token`` is the access token for the stream channel (T7c for consumers). ``declared_stream``
    is the card's stream name (``_default`` when the agent declared none). ``announced_at`` is
    the PubNub timetoken of the ``stream_started`` event that announced the stream to this task
    (None when unknown); a reader replays only frames newer than it (see docs/streams.md).
    """

    task_id: str
    stream_id: str
    agent_name: str
    channel: str
    token: str
    agent_direction: StreamDirection
    local_direction: StreamDirection
    format: StreamFormat
    affinity: StreamAffinity
    metadata: Mapping[str, Any] | None = None
    declared_stream: str | None = None
    token_ttl_minutes: int | None = None
    announced_at: int | None = None

    @classmethod
    def for_consumer(
        cls,
        task_id: str,
        stream_id: str,
        announcement: StreamAnnouncement,
        declared_stream: str | None = None,
        announced_at: int | None = None,
    ) -> StreamDescriptor:
        """The consumer's descriptor of an announced stream (direction inverted)."""
        parsed = parse_stream_channel(announcement.channel)
        agent_name = parsed.agent_name if parsed is not None else ""
        return cls(
            task_id=task_id,
            stream_id=stream_id,
            agent_name=agent_name,
            channel=announcement.channel,
            token=announcement.token,
            agent_direction=announcement.direction,
            local_direction=invert_direction(announcement.direction),
            format=announcement.format,
            affinity=announcement.affinity,
            metadata=announcement.metadata,
            declared_stream=declared_stream,
            token_ttl_minutes=announcement.token_ttl_minutes,
            announced_at=announced_at,
        )

    @property
    def direction(self) -> StreamDirection:
        """Alias of :attr:`local_direction`: the direction from the holder's side."""
        return self.local_direction

    @property
    def readable(self) -> bool:
        """True when the holder reads this stream (local inbound or bidirectional)."""
        return self.local_direction in _READABLE

    @property
    def writable(self) -> bool:
        """True when the holder writes this stream (local outbound or bidirectional)."""
        return self.local_direction in _WRITABLE

    @property
    def name(self) -> str:
        """The declared stream name, falling back to the runtime stream id."""
        return self.declared_stream or self.stream_id
