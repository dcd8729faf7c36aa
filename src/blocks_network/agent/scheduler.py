"""One timer thread per instance: status flushes and pipe deadlines share it.

A ``threading.Timer`` per task would add a thread per in-flight task; a heap and one
thread (``blocks-agent-timer``, started on first use) keep the thread count flat.
Callbacks run on that thread and must be short (a publish, setting an event).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from blocks_network.errors import ClosedError

__all__ = ["Scheduler", "TimerHandle"]

logger = logging.getLogger(__name__)


class TimerHandle:
    """A scheduled call; :meth:`cancel` prevents it from running (idempotent)."""

    __slots__ = ("_cancelled", "at", "callback")

    def __init__(self, at: float, callback: Callable[[], None]) -> None:
        self.at = at
        self.callback = callback
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled


class Scheduler:
    """Runs callbacks at monotonic deadlines on one daemon thread. Thread-safe."""

    def __init__(self, name: str = "blocks-agent-timer") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_at(self, at: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` at monotonic time ``at``; raises ClosedError after :meth:`close`."""
        handle = TimerHandle(at, callback)
        with self._cond:
            if self._closed:
                raise ClosedError("the agent instance is stopped; its timers no longer run")
            heapq.heappush(self._heap, (at, next(self._seq), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` after ``delay_s`` seconds."""
        return self.call_at(time.monotonic() + max(0.0, delay_s), callback)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        handle = heapq.heappop(self._heap)[2]
                        break
                    timeout = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(timeout)
            if handle.cancelled:
                continue
            try:
                handle.callback()
            except Exception:
                logger.exception("timer callback failed")

    def close(self, timeout: float = 5.0) -> None:
        """Drop pending timers and join the thread; safe to call twice."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
