"""Presence state of the instance on its control channel (protocol §9.2), kept current.

The backend picks instances by their announced ``activeTasks``, and counts a slot freed by
a terminal as still taken ("cooling") until the instance's state confirms it; it holds the
next task back only while that count says the instance is full. So a task's end is
announced *before* its terminal (:meth:`PresenceReporter.task_ended` blocks) whenever the
backend could count the instance full without it: the running tasks plus the ends not yet
confirmed come within half of the concurrency, or the running tasks alone did in the
last :data:`BUSY_HOLD_S` (in a burst the backend may hold tasks for us we have not seen).
Otherwise — tasks one after another, far below capacity — the end is announced in the
background, and a presence request covers many ends instead of one each, off the
terminal's critical path. :meth:`PresenceReporter.update` blocks until a state that
includes the caller's change has been sent. Concurrent callers share one request (group
commit): while one update is on the wire, every change made meanwhile rides on the next
one, so a burst of task ends costs one or two updates.

Changes nobody waits for (task start) use :meth:`PresenceReporter.mark_dirty`, which one
thread (``blocks-agent-presence``) sends in the background after a short debounce, unless a
blocking update has announced them already. Presence state lives in the network's memory, so
when the control channel's connection drops or comes back :meth:`PresenceReporter.resync`
has that thread announce the state at once and again (0.5 s doubling to 5 s apart) until the
network takes it: a restarted network must not wait for the next task event to learn the
instance's capacity (without it, it cannot dispatch to the instance at all).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from blocks_network.agent.realtime_http import RealtimeHttp
from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.retry import RECONNECT

__all__ = ["PresenceReporter", "PresenceTarget"]

logger = logging.getLogger(__name__)

_JOIN_TIMEOUT_S: Final = 5.0
_IDLE_WAIT_S: Final = 60.0
#: A caller waiting for another thread's update gives up after this long.
_SHARED_WAIT_S: Final = 10.0
#: How long a non-urgent change waits before the background thread announces it.
DEBOUNCE_S: Final = 0.1
#: After the instance came near its capacity, task ends are announced before their
#: terminals for this long.
BUSY_HOLD_S: Final = 1.0
#: Re-announcing after a reconnect: the SDK's reconnect back-off, until it succeeds or stops.
RESYNC_RETRY: Final = RECONNECT


@dataclass(frozen=True)
class PresenceTarget:
    """Where and with which token the state is set, plus the state itself."""

    keyset: Keyset
    channel: str
    token: str | None
    state: dict[str, Any]


class PresenceReporter:
    """Coalescing presence-state sender. ``target()`` returns None while not connected."""

    def __init__(self, realtime: RealtimeHttp, target: Callable[[], PresenceTarget | None]) -> None:
        self._realtime = realtime
        self._target = target
        self._cond = threading.Condition()
        self._changes = 0
        self._sent = 0
        self._sending = False
        self._dirty = threading.Event()
        self._resync = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Task ends no successfully sent state covers yet: the backend may still count
        # their slots as taken.
        self._unconfirmed_ends = 0
        # Until when (monotonic) every task end is announced before its terminal.
        self._busy_until = 0.0

    def update(self) -> bool:
        """Announce the current state and return once a state at least this recent was sent.

        Blocks for about one request; never raises (failures are logged, False returned).
        """
        with self._cond:
            self._changes += 1
            mine = self._changes
            while self._sending:
                if not self._cond.wait(_SHARED_WAIT_S):
                    return False
                if self._sent >= mine:
                    return True
            self._sending = True
            covered = self._changes
        return self._send(covered)

    send_now = update

    def active_changed(self, active: int, concurrency: int) -> None:
        """Announce a change of the running tasks (``active`` now) soon, in the background;
        near capacity, the following ends are announced before their terminals."""
        if _near_full(active, concurrency):
            with self._cond:
                self._busy_until = time.monotonic() + BUSY_HOLD_S
        self.mark_dirty()

    def task_ended(self, active: int, concurrency: int) -> None:
        """Announce a task's end, before returning if the backend could otherwise count the
        instance full (``active`` tasks still running; ``concurrency`` 0: unlimited), else
        soon in the background. Never raises."""
        with self._cond:
            self._unconfirmed_ends += 1
            now = time.monotonic()
            if _near_full(active + 1, concurrency):  # it was near full until this end
                self._busy_until = now + BUSY_HOLD_S
            urgent = concurrency > 0 and (
                now < self._busy_until or _near_full(active + self._unconfirmed_ends, concurrency)
            )
        if urgent:
            self.update()
        else:
            self.mark_dirty()

    def _send(self, covered: int) -> bool:
        # The caller set ``_sending``; the state is read now, so it covers ``covered`` and
        # every task end counted so far.
        ok = False
        with self._cond:
            ends = self._unconfirmed_ends
        try:
            target = self._target()
            if target is not None:
                ok = self._realtime.set_state(
                    target.keyset, target.channel, target.state, token=target.token
                )
        except Exception:
            logger.exception("presence update failed")
        finally:
            with self._cond:
                self._sending = False
                self._sent = max(self._sent, covered)
                if ok:
                    self._unconfirmed_ends -= ends
                self._cond.notify_all()
        return ok

    def resync(self) -> None:
        """Announce the state at once, in the background, retrying until the network takes
        it (the connection dropped or came back: the network may have lost it)."""
        with self._cond:
            if self._stop.is_set():
                return
            self._changes += 1
            self._start_thread()
        self._resync.set()
        self._dirty.set()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="blocks-agent-presence", daemon=True
            )
            self._thread.start()

    def _announce_again(self) -> bool:
        """One re-announce attempt (waits for an update on the wire first); True if sent."""
        self._resync.clear()
        with self._cond:
            while self._sending:
                if self._stop.is_set() or not self._cond.wait(_SHARED_WAIT_S):
                    self._resync.set()
                    return False
            self._sending = True
            covered = self._changes
        if self._send(covered):
            logger.debug("presence state announced again after a reconnect")
            return True
        self._resync.set()
        return False

    def mark_dirty(self) -> None:
        """Record a change to announce soon (non-blocking).

        The background thread waits :data:`DEBOUNCE_S` first: a task that ends within that
        time announces both changes with its own (blocking) update, saving a request.
        """
        with self._cond:
            if self._stop.is_set():
                return
            self._changes += 1
            self._start_thread()
        self._dirty.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self._resync.is_set():
                if self._announce_again():
                    failures = 0
                else:
                    failures += 1
                    RESYNC_RETRY.backoff(failures, self._stop)
                continue
            if not self._dirty.wait(_IDLE_WAIT_S) or self._stop.wait(DEBOUNCE_S):
                continue
            self._dirty.clear()
            with self._cond:
                if self._sent >= self._changes or self._sending:
                    # Already announced, or an update in flight; a change it misses sets
                    # the flag again.
                    if self._sending:
                        self._dirty.set()
                    continue
                self._sending = True
                covered = self._changes
            self._send(covered)

    def close(self) -> None:
        """Stop the sender thread; safe to call twice."""
        with self._cond:
            self._stop.set()
            thread = self._thread
        self._dirty.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)


def _near_full(taken: int, concurrency: int) -> bool:
    """Whether ``taken`` slots are within half of ``concurrency`` (0: unlimited) of it.

    Half, at least two: the backend may also hold StartTasks on their way to us, which we
    cannot count (with 2 or less, every end counts as near full)."""
    return concurrency > 0 and taken + max(2, concurrency // 2) > concurrency
