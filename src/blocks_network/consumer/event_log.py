"""A session's record of its task's events: pure bookkeeping, no I/O, no threads (§4.5, §10.1).

- Replays are dropped by timetoken (the last 200 kept, FIFO); events without one are kept.
- The first terminal wins; later terminals (agent + backend safety net) are dropped.
- ``cancel_requested`` is accepted at most once and never after a terminal.
- Artifacts and stream announcements accumulate in arrival order (first announcement of a
  stream id wins).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from blocks_network.consumer.events import TaskEvent
from blocks_network.protocol.artifacts import ArtifactRef
from blocks_network.protocol.constants import SESSION_DEDUP_WINDOW
from blocks_network.protocol.events import ArtifactEvent, CancelRequested

__all__ = ["EventLog", "callback_kind"]


def callback_kind(event: TaskEvent) -> str | None:
    """The typed callback an event goes to (``onProgress`` …), None for ``on_event`` only."""
    if event.is_terminal:
        return "onTerminal"
    if event.is_stream_started:
        return "onStream"
    return {
        "progress": "onProgress",
        ArtifactEvent.TYPE: "onArtifact",
        "system": "onSystem",
        CancelRequested.TYPE: "onCancelRequested",
    }.get(event.type)


class EventLog:
    """Accepts or drops events and keeps what a session reports; not thread-safe."""

    def __init__(self, window: int = SESSION_DEDUP_WINDOW) -> None:
        self._window = window
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self.events: list[TaskEvent] = []
        self.artifacts: list[ArtifactRef] = []
        self.stream_announcements: list[Mapping[str, Any]] = []
        self._stream_ids: set[str] = set()
        self.terminal: TaskEvent | None = None
        self.cancel_requested: TaskEvent | None = None
        self.state: str | None = None
        self.high_water_mark: int | None = None

    def _replayed(self, timetoken: int | None) -> bool:
        if timetoken is None:
            return False
        if timetoken in self._seen:
            return True
        self._seen.add(timetoken)
        self._order.append(timetoken)
        if len(self._order) > self._window:
            self._seen.discard(self._order.popleft())
        if self.high_water_mark is None or timetoken > self.high_water_mark:
            self.high_water_mark = timetoken
        return False

    def add(self, event: TaskEvent) -> bool:
        """Record ``event``; True when callbacks should see it, False for a dropped duplicate."""
        if self._replayed(event.timetoken):
            return False
        kind = callback_kind(event)
        if kind == "onTerminal":
            if self.terminal is not None:
                return False
            self.terminal = event
            self.state = event.state
        elif kind == "onCancelRequested":
            if self.cancel_requested is not None or self.terminal is not None:
                return False
            self.cancel_requested = event
        elif kind == "onArtifact":
            ref = event.artifact_ref
            if ref is not None:
                self.artifacts.append(ref)
        elif kind == "onStream":
            if not self._new_streams(event):
                return False
            self.stream_announcements.append(event.data)
        elif event.state is not None and self.terminal is None and event.type == "progress":
            self.state = event.state
        self.events.append(event)
        return True

    def _new_streams(self, event: TaskEvent) -> bool:
        streams = event.data.get("streams")
        if not isinstance(streams, Mapping):
            return False
        fresh = [sid for sid in streams if isinstance(sid, str) and sid not in self._stream_ids]
        self._stream_ids.update(fresh)
        return bool(fresh)
