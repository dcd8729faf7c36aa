"""AsyncStreamClient: one open stream read and written from asyncio (issue 16).

It wraps a :class:`StreamClient` (the same reader, writer, ordering and errors): reading
awaits the reader's wake-ups (a listener the subscription thread calls when a frame is
queued, a gap opens or the stream ends) instead of holding a thread in ``next_frame``, and
does not poll: a waiting iterator wakes on its own only when an open reorder gap is due to
close (:attr:`StreamReader.gap_deadline`). Writes run on the client's blocking-call pool
(:class:`AsyncStreamWrites`) because the writer blocks when publishing falls behind.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from blocks_network.blocking_calls import BlockingRunner
from blocks_network.stream.async_writes import AsyncStreamWrites
from blocks_network.stream.client import StreamClient
from blocks_network.stream.frames import InboundFrame

__all__ = ["AsyncStreamClient"]


class AsyncStreamClient(AsyncStreamWrites):
    """``async for chunk in stream.bytes()``, ``async for event in stream.events()``,
    ``await stream.write(...)``; ``sync`` is the wrapped :class:`StreamClient`."""

    def __init__(self, client: StreamClient, run: BlockingRunner) -> None:
        super().__init__(client, run)
        self.sync = client

    async def frames(self) -> AsyncIterator[InboundFrame]:
        """In-order frames until the stream ends (as ``StreamClient.frames``)."""
        reader = self.sync._require_reader("reading")
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            # Called by the subscription thread under the reader's lock: never raise there.
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(ready.set)

        remove = reader.add_listener(wake)
        try:
            while True:
                ready.clear()  # before the check: a frame queued after it sets it again
                try:
                    frame = reader.next_frame(0)
                except TimeoutError:
                    await _woken(ready, reader.gap_deadline)
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            remove()

    async def bytes(self) -> AsyncIterator[builtins.bytes]:
        """The decoded bytes of each data frame (a bytes stream)."""
        async for frame in self.frames():
            data = self.sync._frame_bytes(frame)
            if data:
                yield data

    async def events(self) -> AsyncIterator[Any]:
        """Events one by one (an events stream), going on where the last iterator stopped."""
        backlog = self.sync._backlog
        while backlog:
            yield backlog.popleft()
        async for frame in self.frames():
            self.sync._take_events(frame)
            while backlog:
                yield backlog.popleft()


async def _woken(ready: asyncio.Event, gap_deadline: float | None) -> None:
    """Until the reader wakes ``ready``, or an open gap's deadline (monotonic) passes."""
    if gap_deadline is None:
        await ready.wait()
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(ready.wait(), max(0.0, gap_deadline - time.monotonic()))
