"""Timeouts on every connection of a server, and room for new ones at the descriptor limit.

A connection is in one of four phases, kept current by the protocol serving it (the fast
path's or aiohttp's, see :class:`GuardedConnection`): waiting idle between requests,
receiving a request head, receiving a body, or busy (a request is being answered, a
long-poll held). A sweep every fraction of a second closes the connections that overstayed
their phase: no byte of a next request within the idle timeout, no whole head within the
head timeout, a body slower than the minimum rate. A busy connection is never timed out
here: a held subscribe ends after the server's own long-poll time. Without this, clients
that send half a request and wait held every descriptor, and the server answered nobody.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Final

__all__ = ["ConnectionGuard", "ConnectionTimeouts", "GuardedConnection", "Phase"]

logger = logging.getLogger(__name__)

#: A request head (request line and headers) must arrive whole within this many seconds of
#: the connection (or of its first byte, after an idle keep-alive wait).
DEFAULT_HEAD_TIMEOUT_SECONDS: Final = 10.0
#: A keep-alive connection with no byte of a next request for this long is closed.
DEFAULT_IDLE_TIMEOUT_SECONDS: Final = 75.0
#: A request body must arrive at least this fast: bytes per window (1 KiB/s; a 25 MiB upload
#: over a slow link passes, a stalled one is closed within two windows).
DEFAULT_BODY_MIN_BYTES: Final = 10 * 1024
DEFAULT_BODY_WINDOW_SECONDS: Final = 10.0
#: A client that reads none of our answer for this long (its window and our buffer full) is
#: closed, whatever the phase: it would hold a descriptor and the unsent answer for good.
DEFAULT_SEND_TIMEOUT_SECONDS: Final = 60.0
#: Connections closed at most per attempt to accept at the descriptor limit (as nginx does:
#: the longest-waiting idle or half-sent ones go first, so new clients get in).
EVICT_AT_LIMIT: Final = 32
#: The sweep runs at least this often (more often for short timeouts, as in tests).
_SWEEP_SECONDS: Final = 1.0


class Phase(enum.Enum):
    IDLE = "no request since the last answer"
    HEAD = "no whole request head"
    BODY = "request body below the minimum rate"
    BUSY = "answering"
    #: Not a phase: why a connection in any phase was closed (see ``send_seconds``).
    SEND = "answer not read"


@dataclass(frozen=True)
class ConnectionTimeouts:
    """How long each phase of a connection may last (seconds; the body as a minimum rate)."""

    head_seconds: float = DEFAULT_HEAD_TIMEOUT_SECONDS
    idle_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS
    body_min_bytes: int = DEFAULT_BODY_MIN_BYTES
    body_window_seconds: float = DEFAULT_BODY_WINDOW_SECONDS
    send_seconds: float = DEFAULT_SEND_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        limits = (self.head_seconds, self.idle_seconds, self.body_window_seconds, self.send_seconds)
        if min(limits) <= 0:
            raise ValueError("connection timeouts must be positive")
        if self.body_min_bytes < 0:
            raise ValueError("body_min_bytes must be 0 or more")


class GuardedConnection:
    """The guard's view of one connection; its protocol calls :meth:`enter` as it reads."""

    __slots__ = (
        "_guard",
        "mark_bytes",
        "mark_time",
        "phase",
        "received",
        "since",
        "transport",
        "write_stalled_since",
    )

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport) -> None:
        self._guard = guard
        self.transport = transport
        # A new connection owes its first head at once.
        self.phase = Phase.HEAD
        self.since = guard.now
        #: Bytes received so far (the protocol adds to it); the body rate is measured on it.
        self.received = 0
        self.mark_time = self.since
        self.mark_bytes = 0
        #: Since when our answers wait for the client to read (writing paused), if they do.
        self.write_stalled_since: float | None = None

    def enter(self, phase: Phase) -> None:
        """The connection is now in ``phase``; idle restarts its clock on every answer."""
        if phase is not self.phase or phase is Phase.IDLE:
            self.phase = phase
            self.since = self.mark_time = self._guard.now
            self.mark_bytes = self.received

    def writing_paused(self, paused: bool) -> None:
        """The transport's buffer went over (True) or back under (False) its high-water mark."""
        self.write_stalled_since = self._guard.now if paused else None

    def forget(self) -> None:
        """The connection closed (or changed hands): stop watching it."""
        self._guard.forget(self)


class ConnectionGuard:
    """Watches every connection of one server: timeouts, and eviction at the fd limit."""

    def __init__(self, timeouts: ConnectionTimeouts) -> None:
        self.timeouts = timeouts
        self.now = time.monotonic()  # the event loop's clock; updated by every sweep
        self._connections: dict[GuardedConnection, None] = {}  # insertion-ordered set
        self._interval = min(
            _SWEEP_SECONDS,
            timeouts.head_seconds / 4,
            timeouts.body_window_seconds / 4,
            timeouts.send_seconds / 4,
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sweep_forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def watch(self, transport: asyncio.Transport) -> GuardedConnection:
        connection = GuardedConnection(self, transport)
        self._connections[connection] = None
        return connection

    def forget(self, connection: GuardedConnection) -> None:
        self._connections.pop(connection, None)

    def evict(self, limit: int = EVICT_AT_LIMIT) -> int:
        """Close up to ``limit`` connections waiting for a request (idle or half-sent heads),
        longest-waiting first; returns how many."""
        waiting = [c for c in self._connections if c.phase in (Phase.IDLE, Phase.HEAD)]
        waiting.sort(key=lambda connection: connection.since)
        for connection in waiting[:limit]:
            self._close(connection)
        return min(limit, len(waiting))

    async def _sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            self.now = loop.time()
            closed = self.sweep()
            if closed:
                logger.debug(
                    "closed %d connections that overstayed: %s",
                    sum(closed.values()),
                    ", ".join(f"{count} {phase.value}" for phase, count in closed.items()),
                )

    def sweep(self) -> Counter[Phase]:
        """Close the connections past their phase's limit; counts by phase."""
        now, timeouts = self.now, self.timeouts
        closed: Counter[Phase] = Counter()
        for connection in list(self._connections):
            stalled = connection.write_stalled_since
            if stalled is not None and now - stalled >= timeouts.send_seconds:
                self._close(connection)
                closed[Phase.SEND] += 1
                continue
            phase, age = connection.phase, now - connection.since
            if phase is Phase.BUSY:
                continue
            if phase is Phase.BODY:
                if now - connection.mark_time < timeouts.body_window_seconds:
                    continue
                arrived = connection.received - connection.mark_bytes
                # A transport we stopped reading (the handler is behind) is not the client's fault.
                if arrived >= timeouts.body_min_bytes or not connection.transport.is_reading():
                    connection.mark_time, connection.mark_bytes = now, connection.received
                    continue
            elif age < (timeouts.idle_seconds if phase is Phase.IDLE else timeouts.head_seconds):
                continue
            self._close(connection)
            closed[phase] += 1
        return closed

    def _close(self, connection: GuardedConnection) -> None:
        # Abort, not close: a client that reads nothing would keep a closing transport
        # (and its descriptor) until its unsent answers drained.
        self.forget(connection)
        connection.transport.abort()
