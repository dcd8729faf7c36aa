"""A stream for async handlers: ``async with ctx.create_stream(...) as s: await s.write(...)``.

:class:`AsyncStream` wraps the :class:`~blocks_network.stream.client.StreamClient` the
runtime opened; every call that may block (``write`` waits for room when publishing falls
behind, ``flush``, ``end``, ``close``: :class:`AsyncStreamWrites`) runs through the
instance's blocking-call pool, so the event loop keeps serving the other tasks. :class:`StreamOpening` is what
``ctx.create_stream`` returns: await it for the stream, or use it as an async context manager
that ends the stream on a clean exit (``stream_end``: readers' iterators finish) and closes it
without ``stream_end`` when the block raised. (The sync client's ``with`` only closes; a
dedicated stream then gets its ``stream_end`` when the task ends.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any

from blocks_network.blocking_calls import BlockingRunner

from .async_writes import AsyncStreamWrites
from .client import StreamClient

__all__ = ["AsyncStream", "StreamOpening"]


class AsyncStream(AsyncStreamWrites):
    """An open stream seen from a coroutine; :attr:`client` is the blocking client."""

    def __init__(self, client: StreamClient, run: BlockingRunner) -> None:
        super().__init__(client, run)
        self.client = client

    @property
    def channel(self) -> str:
        return self.client.channel

    @property
    def metadata(self) -> Mapping[str, Any] | None:
        return self.client.metadata

    @property
    def closed(self) -> bool:
        return self.client.closed

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.finish(failed=exc_type is not None)

    async def finish(self, *, failed: bool) -> None:
        """Leave an ``async with``: :meth:`end` after a clean exit (readers see the stream
        end), :meth:`close` when the block raised (the task's terminal says why)."""
        await (self.close() if failed else self.end())

    def __repr__(self) -> str:
        return f"AsyncStream({self.client!r})"


class StreamOpening:
    """``await`` it for the :class:`AsyncStream`, or ``async with`` it (ended on exit)."""

    def __init__(self, open_stream: Callable[[], Awaitable[AsyncStream]]) -> None:
        self._open = open_stream
        self._stream: AsyncStream | None = None

    def __await__(self) -> Generator[Any, None, AsyncStream]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncStream:
        self._stream = await self._open()
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.finish(failed=exc_type is not None)
