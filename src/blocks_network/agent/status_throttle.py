"""``report_status`` throttling (protocol §9.6): one progress message per task per second.

Pure logic on an injected clock value, no threads: :meth:`StatusThrottle.offer` says whether
to publish a message now or when to come back, :meth:`StatusThrottle.due` hands out the
buffered (latest) message when that time comes. The runtime drives it with one shared timer.
"""

from __future__ import annotations

from dataclasses import dataclass

from blocks_network.protocol.constants import STATUS_THROTTLE_S

__all__ = ["Buffered", "PublishNow", "ScheduleFlush", "StatusThrottle"]


@dataclass(frozen=True)
class PublishNow:
    """Publish ``message`` at once (the window is open)."""

    message: str


@dataclass(frozen=True)
class ScheduleFlush:
    """The message was buffered; call :meth:`StatusThrottle.due` at monotonic time ``at``."""

    at: float


@dataclass(frozen=True)
class Buffered:
    """The message replaced an earlier buffered one; a flush is already scheduled."""


Decision = PublishNow | ScheduleFlush | Buffered


class StatusThrottle:
    """Latest-wins throttle for one task. Not thread-safe: the caller holds the task's lock."""

    def __init__(self, window_s: float = STATUS_THROTTLE_S) -> None:
        self._window = window_s
        self._last: float | None = None
        self._pending: str | None = None
        self._flush_at: float | None = None

    @property
    def pending(self) -> str | None:
        """The buffered message waiting for the window to reopen, if any."""
        return self._pending

    def offer(self, message: str, now: float) -> Decision:
        """Offer a status line at time ``now`` (monotonic seconds)."""
        if self._flush_at is not None:
            self._pending = message
            return Buffered()
        if self._last is None or now - self._last >= self._window:
            self._last = now
            return PublishNow(message)
        self._pending = message
        self._flush_at = self._last + self._window
        return ScheduleFlush(self._flush_at)

    def due(self, now: float) -> str | None:
        """The scheduled flush fired: return the latest buffered message (or None) and reopen.

        A call before the scheduled time returns None and keeps the message buffered.
        """
        if self._flush_at is None or now < self._flush_at:
            return None
        message, self._pending, self._flush_at = self._pending, None, None
        if message is not None:
            self._last = now
        return message

    def clear(self) -> None:
        """The task ended: drop any buffered message (§9.6)."""
        self._pending = None
        self._flush_at = None
