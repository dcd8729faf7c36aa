"""Reusable threads for long-poll loops and the sessions' poll loop (``blocks-session-poll``).

A thread-per-loop subscription holds a thread for as long as its channel is followed;
starting a thread each time costs more than a task's own work on a busy consumer, so
finished loops hand their thread to the next. Threads idle for :data:`IDLE_TIMEOUT_S` end
by themselves. With ``max_threads`` (the sessions' poll loop, whose jobs are short: read an
answer, deliver it, send the next poll) jobs beyond that many wait their turn in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Final

from blocks_network.errors import ClosedError

__all__ = ["PollThreads"]

logger = logging.getLogger(__name__)

IDLE_TIMEOUT_S: Final = 10.0
_THREAD_NAME: Final = "blocks-session-poll"
_JOIN_TIMEOUT_S: Final = 5.0

Job = Callable[[], None]
#: A queued job and whether :meth:`PollThreads.submit` counted it against an idle thread.
_Entry = tuple[Job, bool]


class PollThreads:
    """A pool of daemon threads: each job runs on its own thread, up to ``max_threads``
    (None: unbounded) at once. Thread-safe."""

    def __init__(
        self,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        thread_name: str = _THREAD_NAME,
        max_threads: int | None = None,
    ) -> None:
        self._idle_timeout_s = idle_timeout_s
        self._thread_name = thread_name
        self._max_threads = max_threads
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._idle = 0
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def submit(self, job: Job) -> None:
        """Run ``job`` on an idle thread, or a new one. Raises ClosedError after close()."""
        with self._lock:
            if self._closed:
                raise ClosedError("the client was destroyed; create a new TaskClient")
            if self._idle > 0:
                # An idle thread is (or is about to be) waiting on the queue: it takes this.
                self._idle -= 1
                self._jobs.put((job, True))
                return
            if self._max_threads is not None and len(self._threads) >= self._max_threads:
                # Every thread is busy: the first to finish takes it.
                self._jobs.put((job, False))
                return
            thread = threading.Thread(
                target=self._run, args=(job,), name=self._thread_name, daemon=True
            )
            self._threads.add(thread)
        thread.start()

    @property
    def size(self) -> int:
        """Threads alive (running a job or idle)."""
        with self._lock:
            return len(self._threads)

    def _run(self, job: Job | None) -> None:
        try:
            while job is not None:
                try:
                    job()
                except Exception:
                    logger.exception("a session poll loop failed")
                job = self._next_job()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _next_job(self) -> Job | None:
        with self._lock:
            if self._closed:
                return None
            self._idle += 1
        try:
            return self._take(self._jobs.get(timeout=self._idle_timeout_s))
        except queue.Empty:
            pass
        with self._lock:
            # submit() may have counted on this thread just as it timed out.
            try:
                entry = self._jobs.get_nowait()
            except queue.Empty:
                self._idle -= 1
                return None
        return self._take(entry)

    def _take(self, entry: _Entry | None) -> Job | None:
        """The job of ``entry``; this thread is busy again if submit() did not count it."""
        if entry is None:
            return None
        job, counted = entry
        if not counted:
            with self._lock:
                self._idle -= 1
        return job

    def close(self) -> None:
        """Wake idle threads so they end, and join every thread (jobs must have been told to
        stop first); safe to call twice."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        current = threading.current_thread()
        # One deadline for all: a loop nobody stopped must not add its own wait per thread.
        deadline = time.monotonic() + _JOIN_TIMEOUT_S
        for thread in threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
