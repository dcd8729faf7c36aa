"""AsyncStreamClient: one open stream read and written from asyncio (issue 16).

It wraps a :class:`StreamClient` (the same reader, writer, ordering and errors): reading
awaits the reader's wake-ups (a listener the subscription thread calls when a frame is
queued or the stream ends) instead of holding a thread in ``next_frame``; gaps still close
after the reorder window, checked at least every :data:`_WAIT_SLICE_S`. Writes run on a
worker thread because the writer blocks when publishing falls behind.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

from blocks_network.stream.client import StreamClient
from blocks_network.stream.frames import InboundFrame

__all__ = ["AsyncStreamClient"]

#: Longest sleep between checks of a waiting reader (its reorder gaps expire on time).
_WAIT_SLICE_S: Final = 0.1


class AsyncStreamClient:
    """``async for chunk in stream.bytes()``, ``async for event in stream.events()``,
    ``await stream.write(...)``; ``sync`` is the wrapped :class:`StreamClient`."""

    def __init__(self, client: StreamClient) -> None:
        self.sync = client

    @property
    def stream_id(self) -> str:
        return self.sync.stream_id

    async def frames(self) -> AsyncIterator[InboundFrame]:
        """In-order frames until the stream ends (as ``StreamClient.frames``)."""
        reader = self.sync._require_reader("reading")
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(ready.set)

        remove = reader.add_listener(wake)
        try:
            while True:
                ready.clear()  # before the check: a frame queued after it sets it again
                try:
                    frame = reader.next_frame(0)
                except TimeoutError:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(ready.wait(), _WAIT_SLICE_S)
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

    async def write(self, data: object) -> None:
        """As ``StreamClient.write`` (buffered; waits when publishing falls behind)."""
        await asyncio.to_thread(self.sync.write, data)

    async def flush(self, timeout: float = 60.0) -> bool:
        return await asyncio.to_thread(self.sync.flush, timeout)

    async def end(self) -> None:
        await asyncio.to_thread(self.sync.end)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)
