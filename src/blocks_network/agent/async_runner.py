"""Running ``async def`` handlers: one coroutine per task on the instance's event loop.

The :class:`~.task_runner.TaskRunner` still accepts, counts and ends every task; this module
only replaces "queue ``_run`` on a worker thread" (its ``dispatch`` hook). A task's coroutine
calls the runner's own steps (``begin``, ``complete``, ``handler_failed``, ``after_run``)
through the blocking-call pool, so the terminal, the outbox, the exactly-once guard and the
capacity count are the sync path's, not a copy.

Cancel, expiry, terminate and shutdown set the task's flags and then its ``on_interrupt``
hook: the handler's asyncio task is cancelled on the loop (``CancelledError`` at its current
await, ``ctx.cancelled`` set first). A handler that lets it propagate, or returns, ends the
task with the terminal the flags call for (``canceled``, or ``completed`` with
``duration_expired``), exactly as a sync handler that returns early.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any, cast

from blocks_network.agent.async_context import AsyncTaskContext
from blocks_network.agent.async_task_client import AgentAsyncTaskClient
from blocks_network.agent.handler_loop import HandlerLoop
from blocks_network.agent.task_runner import TaskRunner
from blocks_network.agent.task_state import ActiveTask
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.errors import ClosedError
from blocks_network.types import AsyncHandler, Handler

__all__ = ["AsyncTaskRunner", "is_async_handler"]

logger = logging.getLogger(__name__)


def is_async_handler(handler: Handler | None) -> bool:
    """True for an ``async def`` function (or partial of one) or an object whose
    ``__call__`` is ``async def``."""
    if handler is None:
        return False
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - the bound method is what we test
    return call is not None and inspect.iscoroutinefunction(call)


class AsyncTaskRunner:
    """Hands accepted tasks to ``handler`` coroutines on ``loop``. Thread-safe."""

    def __init__(
        self,
        runner: TaskRunner,
        handler: Handler,
        *,
        loop: HandlerLoop,
        calls: BlockingCalls,
        task_client: AgentAsyncTaskClient,
    ) -> None:
        self._runner = runner
        self._task_client = task_client
        self._handler = cast(AsyncHandler, handler)
        self._loop = loop
        self._calls = calls
        #: Strong references: the loop keeps only weak ones to its tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def dispatch(self, task: ActiveTask) -> None:
        """The runner's ``dispatch`` hook (control thread): start ``task``'s coroutine."""
        if self._closing:
            raise ClosedError("the agent instance is stopped; it takes no new tasks")
        self._loop.call_soon(lambda: self._spawn(task))

    def _spawn(self, task: ActiveTask) -> None:
        coro = self._run(task)
        handle = asyncio.get_running_loop().create_task(coro, name=f"blocks-task-{task.task_id}")
        self._tasks.add(handle)
        handle.add_done_callback(self._tasks.discard)

    async def _run(self, task: ActiveTask) -> None:
        if task.ended:
            return
        try:
            await self._calls.run(lambda: self._begin(task))
            outcome = await self._call_handler(task)
            await self._calls.run(lambda: self._end(task, outcome))
        except ClosedError:
            # The instance stopped under us; its shutdown ended the task already.
            logger.debug("task %s: instance stopped while it ran", task.task_id)
        finally:
            task.on_interrupt = None

    def _begin(self, task: ActiveTask) -> None:
        """(blocking pool) ``progress running``, read before the handler starts: an unread
        publish holds its HTTP connection, and a task may wait for minutes (20,000 waiting
        tasks would hold 20,000 sockets). Sync handlers overlap it with their start."""
        self._runner.begin(task)
        self._runner.settle(task.creds)

    def _end(self, task: ActiveTask, outcome: _Returned | BaseException) -> None:
        """(blocking pool) The sync runner's end of a task, in one hop off the loop."""
        try:
            if isinstance(outcome, BaseException):
                self._runner.handler_failed(task, outcome)
            else:
                self._runner.complete(task, outcome.result)
        finally:
            self._runner.after_run(task)

    async def _call_handler(self, task: ActiveTask) -> _Returned | BaseException:
        """Run the handler until it returns, raises or is interrupted."""
        ctx = AsyncTaskContext(task.ctx, self._calls, self._task_client)
        handler_task = asyncio.ensure_future(self._handler(task.ctx.task, ctx))
        loop = asyncio.get_running_loop()

        def interrupt() -> None:  # any thread
            loop.call_soon_threadsafe(self._interrupt, handler_task, ctx)

        task.on_interrupt = interrupt
        if task.interrupted():  # asked to stop before the hook was in place
            self._interrupt(handler_task, ctx)
        try:
            return _Returned(await handler_task)
        except asyncio.CancelledError as exc:
            if task.interrupted():
                return _Returned(None)  # the terminal comes from the flags, as for sync
            if self._closing or not handler_task.done():
                raise  # the instance's loop is shutting down: its drain ends the task
            return exc  # the handler's own stray cancellation: a failure
        except Exception as exc:
            return exc

    @staticmethod
    def _interrupt(handler_task: asyncio.Future[Any], ctx: AsyncTaskContext) -> None:
        ctx.cancelled.set()
        handler_task.cancel()

    @property
    def in_flight(self) -> int:
        """Task coroutines alive (for tests and benchmarks)."""
        return len(self._tasks)

    def close(self) -> None:
        """Take no more tasks; cancel what is left (the instance's drain ended those tasks
        already), close ``ctx.task_client``'s connections, stop the own loop and the pool."""
        self._closing = True
        if self._loop.external:
            # A closed caller's loop took our coroutines with it: nothing to cancel then.
            with contextlib.suppress(ClosedError):
                self._loop.call_soon(self._cancel_all)
        self._task_client.close()  # on the loop, so before the own loop stops
        self._loop.close()
        self._calls.close()

    def _cancel_all(self) -> None:
        for handle in list(self._tasks):
            handle.cancel()


class _Returned:
    """A handler's return value (so ``None`` and an exception result stay distinct)."""

    __slots__ = ("result",)

    def __init__(self, result: object) -> None:
        self.result = result
