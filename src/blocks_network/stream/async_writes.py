"""The awaitable writing half of a stream, shared by the agent's :class:`AsyncStream` and the
consumer's :class:`AsyncStreamClient`.

Each call runs the :class:`StreamClient`'s blocking method (``write`` waits for room when
publishing falls behind; ``flush``, ``end`` and ``close`` wait for the publishes) through a
:data:`~blocks_network.blocking_calls.BlockingRunner`: a pool of daemon threads, so the
event loop keeps serving everything else and a stuck publish never holds the process open.
"""

from __future__ import annotations

from blocks_network.blocking_calls import BlockingRunner

from .client import StreamClient

__all__ = ["AsyncStreamWrites"]


class AsyncStreamWrites:
    """``await write/flush/end/close`` over ``stream`` (a blocking :class:`StreamClient`)."""

    def __init__(self, stream: StreamClient, run: BlockingRunner) -> None:
        self._stream = stream
        self._run = run

    @property
    def stream_id(self) -> str:
        return self._stream.stream_id

    async def write(self, data: object) -> None:
        """Send ``str``/``bytes`` (bytes stream) or a JSON value (events stream); see
        :meth:`StreamClient.write`. Writes are sent in the order they are awaited."""
        await self._run(lambda: self._stream.write(data))

    async def flush(self, timeout: float = 60.0) -> bool:
        """Publish what is buffered and wait for it; False if still pending after ``timeout``."""
        done: bool = await self._run(lambda: self._stream.flush(timeout))
        return done

    async def end(self) -> None:
        """Finish writing (flush, then ``stream_end`` where the stream carries one)."""
        await self._run(self._stream.end)

    async def close(self) -> None:
        """Flush and stop (no ``stream_end``; the task's end sends it). Idempotent."""
        await self._run(self._stream.close)
