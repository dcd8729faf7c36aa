"""What an ``async def handler(task, ctx)`` gets as ``ctx``: awaitable TaskContext methods.

:class:`AsyncTaskContext` mirrors :class:`~blocks_network.types.TaskContext`; each method that
does I/O is a coroutine whose blocking part runs on the instance's blocking-call pool (see
:mod:`blocks_network.blocking_calls`), so awaiting it never stalls the loop. Cancellation, expiry,
termination and shutdown reach the handler as ``asyncio.CancelledError`` at its current
await; :attr:`AsyncTaskContext.cancelled` is set first, for cooperative checks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from blocks_network.agent.async_task_client import AgentAsyncTaskClient
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.consumer.artifacts import DownloadedArtifact
from blocks_network.protocol.artifacts import ArtifactRef
from blocks_network.protocol.constants import STREAM_SUBSCRIBE_GRACE_MS
from blocks_network.stream.async_stream import AsyncStream, StreamOpening
from blocks_network.stream.client import StreamClient
from blocks_network.types import StartTaskMessage, TaskContext

__all__ = ["AsyncTaskContext"]


class AsyncTaskContext:
    """An async handler's view of its running task; one per task, used on the loop's thread.

    - ``await ctx.report_status(msg)``; ``await ctx.publish_artifact(data, ...)``;
      ``await ctx.download_input_artifact(part)``.
    - ``async with ctx.create_stream(...) as s: await s.write(...)`` (or ``await`` it).
    - :attr:`cancelled` (``asyncio.Event``), :attr:`is_cancelled`, :attr:`is_expired`,
      :attr:`is_terminated` as on the sync context.
    - ``await ctx.task_client.send_message(...)`` calls other agents (awaitable sessions).
    - :attr:`sync` is the thread-safe :class:`TaskContext` underneath (for code run with
      ``asyncio.to_thread``), and its ``task_client`` the blocking consumer client.
    """

    def __init__(
        self, ctx: TaskContext, calls: BlockingCalls, task_client: AgentAsyncTaskClient
    ) -> None:
        self.sync = ctx
        #: Call other agents: ``await ctx.task_client.send_message(...)`` (an
        #: :class:`AsyncTaskClient` over the instance's embedded client, created on first use).
        self.task_client = task_client
        self.task: StartTaskMessage = ctx.task
        self.task_id = ctx.task_id
        self.has_stream = ctx.has_stream
        self.consumer_public_key = ctx.consumer_public_key
        #: Set (on the loop) when the task is cancelled, expires, is terminated or shut down.
        self.cancelled = asyncio.Event()
        self._calls = calls
        if ctx.is_cancelled:
            self.cancelled.set()

    @property
    def is_cancelled(self) -> bool:
        return self.sync.is_cancelled

    @property
    def is_expired(self) -> bool:
        return self.sync.is_expired

    @property
    def is_terminated(self) -> bool:
        return self.sync.is_terminated

    async def report_status(self, message: str) -> None:
        """Publish a ``progress`` message (at most one per second per task, latest wins)."""
        text = str(message)
        await self._calls.run(lambda: self.sync.report_status(text))

    async def publish_artifact(
        self,
        data: str | bytes,
        mime_type: str | None = None,
        file_name: str | None = None,
        output_id: str | None = None,
    ) -> ArtifactRef:
        """Publish one artifact now (inline, or uploaded when large); its reference.
        Raises ArtifactError as :meth:`TaskContext.publish_artifact` does."""
        ref: ArtifactRef = await self._calls.run(
            lambda: self.sync.publish_artifact(data, mime_type, file_name, output_id)
        )
        return ref

    async def download_input_artifact(self, part: object) -> DownloadedArtifact:
        """A request part's artifact (``.data``, ``.mime_type``, ``.file_name``)."""
        got: DownloadedArtifact = await self._calls.run(
            lambda: self.sync.download_input_artifact(part)
        )
        return got

    def create_stream(self, **kwargs: Any) -> StreamOpening:
        """Open a live stream (same options as :meth:`TaskContext.create_stream`)."""

        async def open_stream() -> AsyncStream:
            grace_ms = kwargs.get("subscribe_grace_ms")
            grace_ms = STREAM_SUBSCRIBE_GRACE_MS if grace_ms is None else grace_ms
            # The subscribe grace is awaited here, not slept on a blocking-pool thread, so
            # many tasks opening streams at once do not hold up the others' publishes.
            # With on_activate (started after the grace) or a bad grace: the sync path.
            on_loop = kwargs.get("on_activate") is None and grace_ms >= 0
            options = {**kwargs, "subscribe_grace_ms": 0} if on_loop else kwargs
            client: StreamClient = await self._calls.run(lambda: self.sync.create_stream(**options))
            if on_loop and grace_ms and client.direction != "inbound":
                await asyncio.sleep(grace_ms / 1000)
            return AsyncStream(client, self._calls.run)

        return StreamOpening(open_stream)
