"""AsyncStreamClient's reading waits on the reader's wake-ups, with no polling tick: a frame
arrives when delivered, an open reorder gap is given up on time, close and cancel end it."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from blocks_network.stream.async_client import AsyncStreamClient
from blocks_network.stream.client import StreamClient
from blocks_network.stream.frames import InboundFrame

pytestmark = pytest.mark.anyio

WAIT = 10.0


class FakeReader:
    """The part of StreamReader the async iterator uses; counts its ``next_frame`` calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: collections.deque[InboundFrame] = collections.deque()
        self.listeners: list[Callable[[], None]] = []
        self.finished = False
        self.checks = 0
        #: (monotonic deadline, frame released then): an open gap, as the reorder buffer's.
        self.gap: tuple[float, InboundFrame] | None = None

    @property
    def gap_deadline(self) -> float | None:
        return None if self.gap is None else self.gap[0]

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        with self.lock:
            self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def next_frame(self, timeout: float | None) -> InboundFrame | None:
        assert timeout == 0
        with self.lock:
            self.checks += 1
            if self.gap is not None and time.monotonic() >= self.gap[0]:
                self.ready.append(self.gap[1])
                self.gap = None
            if self.ready:
                return self.ready.popleft()
            if self.finished:
                return None
        raise TimeoutError

    def _wake(self) -> None:
        for listener in list(self.listeners):
            listener()

    def deliver(self, frame: InboundFrame) -> None:
        """(the subscription thread) A frame is queued."""
        with self.lock:
            self.ready.append(frame)
        self._wake()

    def finish(self) -> None:
        """(any thread) The stream ended or was closed."""
        with self.lock:
            self.finished = True
        self._wake()


class FakeClient:
    def __init__(self, reader: FakeReader) -> None:
        self.reader = reader

    def _require_reader(self, what: str) -> FakeReader:
        return self.reader


def _stream(reader: FakeReader) -> AsyncStreamClient:
    async def no_blocking_calls(call: Callable[[], Any]) -> Any:
        raise AssertionError("reading makes no blocking call")

    return AsyncStreamClient(cast(StreamClient, FakeClient(reader)), no_blocking_calls)


def _frame(seq: int) -> InboundFrame:
    return cast(InboundFrame, f"frame {seq}")


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_waiting_reader_wakes_on_delivery_and_not_on_a_tick() -> None:
    reader = FakeReader()
    frames: AsyncIterator[InboundFrame] = _stream(reader).frames()
    first = asyncio.ensure_future(frames.__anext__())
    await _until(lambda: reader.checks == 1)  # checked once, found nothing, waits
    await asyncio.sleep(0.35)  # a reader polling every 0.1 s would have checked again
    assert reader.checks == 1 and not first.done()
    threading.Thread(target=reader.deliver, args=(_frame(1),)).start()
    assert await asyncio.wait_for(first, WAIT) == _frame(1)
    threading.Thread(target=reader.finish).start()
    assert [frame async for frame in frames] == []  # the end ends the iterator
    assert reader.listeners == []


async def test_an_open_gap_is_given_up_on_time_without_a_wake_up() -> None:
    reader = FakeReader()
    reader.gap = (time.monotonic() + 0.05, _frame(2))  # nothing will call the listeners
    frames = _stream(reader).frames()
    assert await asyncio.wait_for(frames.__anext__(), WAIT) == _frame(2)
    await frames.aclose()
    assert reader.listeners == []


async def test_cancelling_a_waiting_iterator_removes_its_listener() -> None:
    reader = FakeReader()

    async def read_all() -> list[InboundFrame]:
        return [frame async for frame in _stream(reader).frames()]

    reading = asyncio.ensure_future(read_all())
    await _until(lambda: reader.checks == 1 and len(reader.listeners) == 1)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert reader.listeners == []
