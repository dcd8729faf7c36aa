"""Streams read and written from asyncio (AsyncTaskSession.open_stream → AsyncStreamClient),
end to end against a real local network (anyio's pytest plugin, asyncio backend)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import AsyncTaskClient, StreamUnavailableError, text_part
from blocks_network.types import StartTaskMessage, TaskContext

from .conftest import AgentFactory, stream_card

pytestmark = pytest.mark.anyio

WAIT = 15.0


@pytest.fixture
async def aclient(blocks_env: LocalNetwork) -> AsyncIterator[AsyncTaskClient]:
    async with await AsyncTaskClient.create("free") as made:
        yield made


async def test_bytes_and_events_arrive_in_order_as_async_iterators(
    start_agent: AgentFactory, aclient: AsyncTaskClient
) -> None:
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0)
        for i in range(2_000):
            stream.write({"i": i})
        opened.wait(10)  # the task must not end before the consumer opened the stream

    start_agent(agent_name="many_events", handler=handler)
    session = await aclient.send_message("many_events", [text_part("go")], stream=True)
    async with session:
        stream = await session.open_stream(timeout=WAIT)
        opened.set()
        seen = [event["i"] async for event in stream.events()]
        assert seen == list(range(2_000))
        assert (await session.wait_for_terminal(timeout=WAIT)).state == "completed"


async def test_bidirectional_chat_with_await_write(
    start_agent: AgentFactory, aclient: AsyncTaskClient
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(subscribe_grace_ms=0)
        for message in stream.events(timeout=15):
            stream.write({"echo": message["text"]})
            stream.flush()
            if message["text"] == "bye":
                return

    card = stream_card(
        "chatty", {"chat": {"direction": "bidirectional", "format": "events"}}, pipe=True
    )
    start_agent(agent_name="chatty", handler=handler, card=card)
    session = await aclient.send_message("chatty", [text_part("hi")], task_kind="pipe", duration=5)
    async with session:
        chat = await session.open_stream("chat", timeout=WAIT)
        replies = chat.events()
        heard: list[Any] = []
        for word in ("hello", "bye"):
            await chat.write({"text": word})
            await chat.flush()
            heard.append(await asyncio.wait_for(replies.__anext__(), WAIT))
        assert heard == [{"echo": "hello"}, {"echo": "bye"}]
        await replies.aclose()


async def test_a_stream_never_announced_is_unavailable_once_the_task_ends(
    start_agent: AgentFactory, aclient: AsyncTaskClient
) -> None:
    start_agent(agent_name="plain", handler=lambda task, ctx: None)
    session = await aclient.send_message("plain", [text_part("go")], stream=True)
    async with session:
        with pytest.raises(StreamUnavailableError):
            await session.open_stream("missing", timeout=WAIT)
