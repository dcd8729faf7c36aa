"""The async runtime's pieces without a network: blocking calls, the handler loop, streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest

from blocks_network.agent.async_context import AsyncTaskContext
from blocks_network.agent.async_runner import AsyncTaskRunner
from blocks_network.agent.async_task_client import AgentAsyncTaskClient
from blocks_network.agent.handler_loop import HandlerLoop
from blocks_network.agent.task_client_proxy import LazyTaskClient
from blocks_network.agent.task_runner import TaskRunner
from blocks_network.agent.task_state import ActiveTask
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.errors import ClosedError
from blocks_network.stream.async_stream import AsyncStream, StreamOpening
from blocks_network.stream.client import StreamClient
from blocks_network.types import TaskContext

WAIT_S = 10.0


def test_blocking_calls_run_off_the_loop_and_return_or_raise() -> None:
    calls = BlockingCalls(max_workers=2)

    async def main() -> tuple[str, str]:
        name = await calls.run(lambda: threading.current_thread().name)
        with pytest.raises(KeyError):
            await calls.run(lambda: {}["missing"])
        return name, threading.current_thread().name

    try:
        worker, loop_thread = asyncio.run(main())
    finally:
        calls.close()
    assert worker.startswith("blocks-async-io-") and loop_thread == "MainThread"

    async def after_close() -> None:
        await calls.run(lambda: None)

    with pytest.raises(ClosedError):
        asyncio.run(after_close())


def test_own_loop_runs_callbacks_in_order_on_one_thread_and_stops() -> None:
    loop = HandlerLoop()
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def record(i: int) -> Callable[[], None]:
        return lambda: seen.append((i, threading.current_thread().name))

    for i in range(100):
        loop.call_soon(record(i))
    loop.call_soon(done.set)
    assert done.wait(WAIT_S)
    assert seen == [(i, "blocks-async-handlers") for i in range(100)]
    loop.close()
    assert "blocks-async-handlers" not in [t.name for t in threading.enumerate()]
    with pytest.raises(ClosedError):
        loop.call_soon(lambda: None)


def test_own_loop_cancels_pending_coroutines_on_close() -> None:
    loop = HandlerLoop()
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tasks: list[asyncio.Task[None]] = []
    loop.call_soon(lambda: tasks.append(asyncio.get_running_loop().create_task(forever())))
    assert started.wait(WAIT_S)
    loop.close()
    assert cancelled.is_set()


def test_the_callers_loop_is_used_and_left_running() -> None:
    async def main() -> bool:
        handler_loop = HandlerLoop(asyncio.get_running_loop())
        ran = asyncio.Event()
        other = threading.Thread(target=lambda: handler_loop.call_soon(ran.set), daemon=True)
        other.start()
        await asyncio.wait_for(ran.wait(), WAIT_S)
        other.join(WAIT_S)
        handler_loop.close()
        await asyncio.sleep(0)
        return handler_loop.external

    assert asyncio.run(main())


class FakeClient:
    """Records the blocking StreamClient calls an AsyncStream makes."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.stream_id = "t_1-1"

    def write(self, data: object) -> None:
        self.calls.append(("write", data))

    def end(self) -> None:
        self.calls.append("end")

    def close(self) -> None:
        self.calls.append("close")


def _opening(client: FakeClient, calls: BlockingCalls) -> StreamOpening:
    async def open_stream() -> AsyncStream:
        return AsyncStream(cast(StreamClient, client), calls.run)

    return StreamOpening(open_stream)


def test_async_with_ends_the_stream_on_a_clean_exit_and_closes_it_on_an_error() -> None:
    calls = BlockingCalls(max_workers=1)
    clean, failed, awaited = FakeClient(), FakeClient(), FakeClient()

    async def main() -> None:
        async with _opening(clean, calls) as stream:
            await stream.write("a")
            await stream.write({"b": 1})
        with pytest.raises(ValueError):
            async with _opening(failed, calls) as stream:
                await stream.write("x")
                raise ValueError("the model broke")
        stream = await _opening(awaited, calls)
        await stream.write("y")

    try:
        asyncio.run(main())
    finally:
        calls.close()
    assert clean.calls == [("write", "a"), ("write", {"b": 1}), "end"]
    assert failed.calls == [("write", "x"), "close"]
    assert awaited.calls == [("write", "y")]  # awaited, not entered: the task's end ends it


class FakeTaskContext:
    """The sync context under an AsyncTaskContext: records create_stream's options."""

    def __init__(self) -> None:
        self.task = object()
        self.task_id = "t_1"
        self.has_stream = True
        self.consumer_public_key = None
        self.is_cancelled = False
        self.options: list[dict[str, Any]] = []

    def create_stream(self, **options: Any) -> FakeClient:
        self.options.append(options)
        client = FakeClient()
        client.direction = "outbound"  # type: ignore[attr-defined]
        return client


def test_the_subscribe_grace_is_awaited_on_the_loop_not_slept_on_a_pool_thread() -> None:
    calls = BlockingCalls(max_workers=1)  # one thread: a grace slept there would hold it
    sync = FakeTaskContext()
    ctx = AsyncTaskContext(cast(TaskContext, sync), calls, unused_task_client(calls))

    async def main() -> tuple[str, bool]:
        opening = asyncio.ensure_future(_await(ctx.create_stream(subscribe_grace_ms=60_000)))
        while not sync.options:
            await asyncio.sleep(0.01)
        free = await calls.run(lambda: "the pool is free")  # during the 60 s grace
        still_waiting = not opening.done()
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        return free, still_waiting

    try:
        assert asyncio.run(main()) == ("the pool is free", True)
        assert sync.options == [{"subscribe_grace_ms": 0}]

        def activate(stream: Any) -> None:
            return None

        async def with_on_activate() -> None:
            await ctx.create_stream(subscribe_grace_ms=5, on_activate=activate)

        asyncio.run(with_on_activate())  # on_activate runs after the grace: the sync path
        assert sync.options[1] == {"subscribe_grace_ms": 5, "on_activate": activate}
    finally:
        calls.close()


async def _await(opening: StreamOpening) -> AsyncStream:
    return await opening


class FakeRunner:
    """Records the TaskRunner steps an AsyncTaskRunner calls, and when the handler ran."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.done = threading.Event()

    def begin(self, task: Any) -> None:
        self.steps.append("begin")

    def settle(self, creds: Any) -> None:
        self.steps.append("settle")

    def complete(self, task: Any, result: object) -> None:
        self.steps.append(f"complete {result}")

    def handler_failed(self, task: Any, exc: BaseException) -> None:
        self.steps.append(f"failed {exc!r}")

    def after_run(self, task: Any) -> None:
        self.steps.append("after_run")
        self.done.set()


class FakeTask:
    def __init__(self) -> None:
        self.task_id = "t_1"
        self.ended = False
        self.creds = object()
        self.ctx = FakeTaskContext()
        self.on_interrupt: Any = None

    def interrupted(self) -> bool:
        return False


def test_a_task_reads_its_running_publish_before_the_handler_and_ends_in_one_hop() -> None:
    runner = FakeRunner()

    async def handler(task: Any, ctx: AsyncTaskContext) -> str:
        runner.steps.append("handler")
        return "result"

    calls = BlockingCalls(1)
    async_runner = AsyncTaskRunner(
        cast(TaskRunner, runner),
        handler,
        loop=HandlerLoop(),
        calls=calls,
        task_client=unused_task_client(calls),
    )
    try:
        async_runner.dispatch(cast(ActiveTask, FakeTask()))
        assert runner.done.wait(WAIT_S)
    finally:
        async_runner.close()
    # "settle" before "handler": a waiting task holds no unread publish (and its connection).
    assert runner.steps == ["begin", "settle", "handler", "complete result", "after_run"]


def unused_task_client(calls: BlockingCalls) -> AgentAsyncTaskClient:
    """A ctx.task_client these tests never call (its core would need a network)."""
    lazy = LazyTaskClient(
        billing_mode="free", api_key="unused", cdm_url=None, base_url=None, user_id="u"
    )
    return AgentAsyncTaskClient(lazy, calls)
