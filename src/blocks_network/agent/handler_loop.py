"""The event loop async handlers run on: the caller's, or one thread of the instance's own.

``start_agent_instance`` with an ``async def`` handler runs the handlers on one daemon thread,
``blocks-async-handlers``, started with the first task. ``start_agent_instance_async`` and
``async with AgentInstance(...)`` run them on the caller's running loop instead, so handlers
share the application's loop (its clients, its locks). Either way tasks are handed over with
:meth:`HandlerLoop.call_soon` from the control thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Final

from blocks_network.errors import ClosedError

__all__ = ["HandlerLoop"]

logger = logging.getLogger(__name__)

#: On close, how long the own loop gives cancelled coroutines to unwind.
_UNWIND_S: Final = 1.0


class HandlerLoop:
    """An event loop to schedule coroutines on from any thread. Thread-safe."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._external = loop
        self._own: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._pending: list[Callable[[], None]] = []
        self._wake_sent = False

    @property
    def external(self) -> bool:
        """True when the loop is the caller's (this object does not run or close it)."""
        return self._external is not None

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self._external is not None:
            return self._external
        with self._lock:
            if self._closed:
                raise ClosedError("the agent instance is stopped; it takes no new tasks")
            if self._own is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(
                    target=self._run,
                    args=(loop, started),
                    name="blocks-async-handlers",
                    daemon=True,
                )
                thread.start()
                started.wait(5.0)
                self._own, self._thread = loop, thread
            return self._own

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                waiter = asyncio.wait(pending, timeout=_UNWIND_S)
                loop.run_until_complete(waiter)
        finally:
            loop.close()

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop's thread, in call order; raises ClosedError once the
        loop no longer runs.

        Callbacks queue here and the loop is woken once per batch: waking it costs a write
        to its self-pipe, which a burst of StartTasks would otherwise pay per task.
        """
        loop = self._loop()
        with self._lock:
            self._pending.append(callback)
            if self._wake_sent:
                return
            self._wake_sent = True
        try:
            loop.call_soon_threadsafe(self._run_pending)
        except RuntimeError as exc:  # the caller's loop was closed under us
            with self._lock:
                self._pending.clear()
                self._wake_sent = False
            raise ClosedError(
                "the event loop running this agent's handlers is closed; stop the instance "
                "before closing its loop"
            ) from exc

    def _run_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._wake_sent = False
        for callback in batch:
            try:
                callback()
            except Exception:
                logger.exception("handler loop callback failed")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the own loop (its coroutines are cancelled) and join its thread; idempotent.
        The caller's loop is left running."""
        with self._lock:
            self._closed = True
            loop, thread = self._own, self._thread
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return  # already closed
        if thread is not threading.current_thread():
            thread.join(timeout)
