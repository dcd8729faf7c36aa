"""Blocking SDK calls made awaitable: a small pool of daemon threads (``blocks-async-io``).

The one way the SDK's asyncio APIs run what still blocks: an async handler's context methods
(an HTTP publish, an upload, a stream handshake) and the async consumer's (``create``, a
token refresh, a large upload, stream writes). Running them on the event loop would stall
everything else on it, so each is run here and awaited. The pool is bounded
(:data:`ASYNC_IO_WORKERS`) whatever the number of in-flight tasks: 20,000 tasks waiting on a
model cost coroutines, not threads. Why not ``asyncio.to_thread`` /
``loop.run_in_executor``: the default executor's threads are not daemons, so a publish stuck
on a dead network would keep the process from exiting (see :mod:`.workers`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from blocks_network.workers import WorkerPool

__all__ = ["ASYNC_IO_WORKERS", "BlockingCalls", "BlockingRunner"]

logger = logging.getLogger(__name__)

#: Threads that make the blocking calls of all async tasks of one instance.
ASYNC_IO_WORKERS: Final = 16

_T = TypeVar("_T")

#: Awaits a blocking callable off the event loop (:meth:`BlockingCalls.run`).
BlockingRunner = Callable[[Callable[[], Any]], Awaitable[Any]]


class BlockingCalls:
    """Runs blocking callables on a bounded pool and awaits them. Thread-safe."""

    def __init__(
        self,
        max_workers: int = ASYNC_IO_WORKERS,
        *,
        closed_message: str = "the agent instance is stopped; its blocking calls ended",
    ) -> None:
        self._pool = WorkerPool(
            max_workers, name_prefix="blocks-async-io", closed_message=closed_message
        )

    @property
    def thread_count(self) -> int:
        return self._pool.thread_count

    async def run(self, call: Callable[[], _T]) -> _T:
        """``call()`` on the pool; its result or exception. Raises ClosedError after close.

        Cancelling the awaiting coroutine does not stop a call already running: it finishes
        (a publish is not cut in half) and its result is dropped.
        """
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the caller was cancelled before the call started
            try:
                result = call()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._pool.submit(job)
        return await asyncio.wrap_future(future)

    def close(self, timeout: float = 5.0) -> None:
        """Finish the queued calls, then stop the threads (joined up to ``timeout``; 0 does
        not wait); later :meth:`run` raises ClosedError."""
        self._pool.close(timeout)
