"""A small pool of daemon worker threads: the agent's handler executor (``blocks-task-N``)
and, under :class:`~blocks_network.blocking_calls.BlockingCalls`, the threads of every
awaitable blocking call (agent and async consumer).

Why not ``ThreadPoolExecutor``: its workers are not daemon threads, so one handler that ignores
cancellation would keep the process from exiting after Ctrl+C. Workers here start on demand
up to ``max_workers``, exit after ``idle_timeout_s`` without work (so an unlimited pool shrinks
back after a burst), and are joined by :meth:`WorkerPool.close`.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable

from blocks_network.errors import ClosedError

__all__ = ["UNLIMITED_WORKERS", "WorkerPool"]

logger = logging.getLogger(__name__)

#: Worker ceiling when concurrency is 0 ("unlimited"); beyond it tasks wait in the queue.
UNLIMITED_WORKERS = 256
_DEFAULT_IDLE_TIMEOUT_S = 60.0

_Job = Callable[[], None]


class WorkerPool:
    """Runs submitted callables on up to ``max_workers`` daemon threads. Thread-safe."""

    def __init__(
        self,
        max_workers: int,
        *,
        name_prefix: str = "blocks-task",
        idle_timeout_s: float = _DEFAULT_IDLE_TIMEOUT_S,
        closed_message: str = "the agent instance is stopped; it takes no new tasks",
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._prefix = name_prefix
        self._idle_timeout = idle_timeout_s
        #: What :meth:`submit` raises (ClosedError) after :meth:`close`: says whose pool.
        self._closed_message = closed_message
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._counter = itertools.count(1)
        self._closed = False

    @property
    def thread_count(self) -> int:
        """Worker threads alive right now."""
        with self._lock:
            return len(self._threads)

    def submit(self, job: _Job) -> None:
        """Queue ``job``; starts a worker if none is idle. Raises ClosedError after close."""
        with self._lock:
            if self._closed:
                raise ClosedError(self._closed_message)
            if self._idle > 0:
                self._idle -= 1  # reserve it: the job below wakes exactly one idle worker
            elif len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}-{next(self._counter)}", daemon=True
                )
                self._threads.add(thread)
                thread.start()
            self._queue.put(job)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                job = self._queue.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    # Exit only if nobody reserved us in the meantime.
                    if self._idle > 0 and not self._closed:
                        self._idle -= 1
                        self._threads.discard(me)
                        return
                continue
            if job is None:
                with self._lock:
                    self._threads.discard(me)
                return
            try:
                job()
            except BaseException:
                logger.exception("worker job failed")
            with self._lock:
                self._idle += 1

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting jobs, let workers finish the queued ones, join them; idempotent.

        Workers stuck in a job longer than ``timeout`` are left
        running (they are daemon threads and do not keep the process alive).
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                for _ in range(len(self._threads)):
                    self._queue.put(None)
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
