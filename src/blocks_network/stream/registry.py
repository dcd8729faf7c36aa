"""Every stream an agent instance has open, and which tasks hold each (protocol §8.1).

A dedicated stream belongs to one task. A shared stream (keyed by its declared name) is
ref-counted across the instance's tasks: the first task creates it, later tasks attach to
the same handle, and it is closed when the last holder lets go. Thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from blocks_network.protocol.constants import StreamAffinity, StreamDirection, StreamFormat

from .client import StreamClient
from .errors import StreamOptionsError

__all__ = ["StreamEntry", "StreamRegistry"]


@dataclass
class StreamEntry:
    """One open stream of the instance and its holders (task ids, in attach order)."""

    stream_id: str
    client: StreamClient
    direction: StreamDirection
    format: StreamFormat
    affinity: StreamAffinity
    external: bool
    tasks: list[str] = field(default_factory=list)

    def check_compatible(self, direction: str, format: str, affinity: str, external: bool) -> None:
        """Raise StreamOptionsError unless a new holder asks for the same kind of stream."""
        mine = (self.direction, self.format, self.affinity, self.external)
        theirs = (direction, format, affinity, external)
        if mine != theirs:
            raise StreamOptionsError(
                f"shared stream {self.stream_id!r} is already open as (direction, format, "
                f"affinity, external) = {mine}; this task asked for {theirs}"
            )


class StreamRegistry:
    """Open streams by stream id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, StreamEntry] = {}

    def get(self, stream_id: str) -> StreamEntry | None:
        with self._lock:
            return self._entries.get(stream_id)

    def add(self, entry: StreamEntry) -> None:
        """Register a newly opened stream (its first holder is in ``entry.tasks``)."""
        with self._lock:
            self._entries[entry.stream_id] = entry

    def attach(self, stream_id: str, task_id: str) -> StreamEntry | None:
        """Add ``task_id`` as a holder; returns the entry, None if the stream is gone."""
        with self._lock:
            entry = self._entries.get(stream_id)
            if entry is not None and task_id not in entry.tasks:
                entry.tasks.append(task_id)
            return entry

    def detach_task(self, task_id: str) -> tuple[list[StreamEntry], list[StreamEntry]]:
        """Let go of every stream ``task_id`` holds.

        Returns ``(released, kept)``: streams with no holder left (removed; the caller ends
        them) and shared streams other tasks still hold.
        """
        released: list[StreamEntry] = []
        kept: list[StreamEntry] = []
        with self._lock:
            for stream_id, entry in list(self._entries.items()):
                if task_id not in entry.tasks:
                    continue
                entry.tasks.remove(task_id)
                if entry.tasks:
                    kept.append(entry)
                else:
                    del self._entries[stream_id]
                    released.append(entry)
        return released, kept

    def remove(self, stream_id: str) -> StreamEntry | None:
        """Forget a stream whatever its holders (fail_stream); returns it if it was open."""
        with self._lock:
            return self._entries.pop(stream_id, None)

    def remove_all(self) -> list[StreamEntry]:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            return entries

    def task_stream_ids(self, task_id: str) -> list[str]:
        with self._lock:
            return [sid for sid, e in self._entries.items() if task_id in e.tasks]

    def active_count(self) -> int:
        """Open streams this process writes or reads itself (external ones not counted)."""
        with self._lock:
            return sum(1 for e in self._entries.values() if not e.external)
