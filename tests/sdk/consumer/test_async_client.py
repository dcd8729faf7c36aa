"""AsyncTaskClient against a real local network: the sync API's semantics, awaited.

anyio's pytest plugin (installed with httpx) runs these ``async def`` tests on asyncio.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.backend import grants
from blocks_devnet.network import LocalNetwork
from blocks_network import (
    ArtifactError,
    AsyncTaskClient,
    AuthError,
    FileArtifactRef,
    TaskEvent,
    TokenResult,
    text_part,
)
from blocks_network.consumer import task_session
from blocks_network.protocol.control import CancelTask, StartTask
from tests.sdk.consumer.responder import Responder, silent
from tests.sdk.consumer.test_token_modes import exchange

pytestmark = pytest.mark.anyio

WAIT = 10.0


@pytest.fixture
async def client(blocks_env: dict[str, str]) -> AsyncIterator[AsyncTaskClient]:
    async with await AsyncTaskClient.create("free") as made:
        yield made


async def test_send_wait_events_and_artifacts(
    client: AsyncTaskClient, agent: Responder, tmp_path: Path
) -> None:
    async with await client.send_message("echo", [text_part("hi")]) as session:
        terminal = await session.wait_for_terminal(timeout=WAIT)
        assert terminal.state == "completed" and session.is_terminal
        seen = [event.type async for event in session.events()]
        assert seen == ["request", "progress", "artifact", "terminal"]
        [ref] = await session.list_artifacts()
        assert (await session.download_artifact(ref)).data == b"Echoed request: hi"
        [saved] = await session.save_artifacts(tmp_path / "out")
        assert saved.read_bytes() == b"Echoed request: hi"


async def test_events_arrive_live_and_end_with_the_terminal(
    client: AsyncTaskClient, agent: Responder
) -> None:
    agent.handler = silent
    session = await client.send_message("echo", [text_part("x")])
    task = agent.started.get(timeout=WAIT)
    received: list[TaskEvent] = []

    async def follow() -> None:
        async for event in session.events():
            received.append(event)
            if event.type == "progress":
                agent.agent.finish(task, "completed")

    await asyncio.wait_for(follow(), WAIT)
    assert [e.type for e in received] == ["request", "progress", "terminal"]
    assert received[-1].state == "completed"
    await session.close()


async def test_wait_for_terminal_times_out_then_connect_sees_the_end(
    client: AsyncTaskClient, agent: Responder
) -> None:
    agent.handler = silent
    session = await client.send_message("echo", [text_part("slow")])
    for _ in range(3):
        with pytest.raises(TimeoutError, match="did not end within"):
            await session.wait_for_terminal(timeout=0.1)
    assert session.sync._done_callbacks == []  # timed-out waits leave nothing behind
    again = await client.connect(session.task_id)
    assert again.state == "running" and not again.is_terminal
    agent.agent.finish(agent.started.get(timeout=WAIT), "completed")
    assert (await again.wait_for_terminal(timeout=WAIT)).state == "completed"
    assert (await session.wait_for_terminal(timeout=WAIT)).state == "completed"
    finished = await client.connect(session.task_id)  # from history, not subscribed
    assert finished.is_terminal and finished.terminal_event is not None
    for each in (session, again, finished):
        await each.close()


async def test_a_cancelled_wait_leaves_nothing_behind_and_a_failing_waiter_wakes_the_rest(
    client: AsyncTaskClient, agent: Responder
) -> None:
    agent.handler = silent
    session = await client.send_message("echo", [text_part("cancelled wait")])
    waiting = asyncio.ensure_future(session.wait_for_terminal(timeout=None))
    await asyncio.sleep(0)  # let it register its wake-up
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert session.sync._done_callbacks == []  # a cancelled wait leaves nothing behind

    def broken() -> None:
        raise RuntimeError("a waiter whose loop is gone")

    session.sync._when_done(broken)
    woken = asyncio.ensure_future(session.wait_for_terminal(timeout=WAIT))
    await asyncio.sleep(0)
    agent.agent.finish(agent.started.get(timeout=WAIT), "completed")
    # The broken waiter comes first; the one after it is still woken.
    assert (await woken).state == "completed"
    await session.close()


async def test_cancel_ends_the_task_as_canceled(client: AsyncTaskClient, agent: Responder) -> None:
    agent.handler = silent

    def on_control(responder: Responder, message: Any) -> None:
        if isinstance(message, CancelTask):
            responder.agent.finish(responder.tasks[message.task_id], "canceled")

    agent.on_control = on_control
    async with await client.send_message("echo", [text_part("c")]) as session:
        agent.started.get(timeout=WAIT)
        await session.cancel()
        assert (await session.wait_for_terminal(timeout=WAIT)).state == "canceled"


async def test_an_async_token_provider_runs_on_the_loop_and_a_refused_token_is_refreshed(
    blocks_env: dict[str, str], network: LocalNetwork, agent: Responder
) -> None:
    threads: list[str] = []

    async def provider() -> TokenResult:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            return TokenResult("not-a-jwt", 3600, network.dev_identity.user_id)
        data = exchange(network)
        return TokenResult(data["accessToken"], 3600, data["userId"])

    async with await AsyncTaskClient.create("free", token_provider=provider) as client:
        session = await client.send_message("echo", [text_part("t")])  # 401 → refresh → retry
        assert (await session.wait_for_terminal(timeout=WAIT)).state == "completed"
    assert len(threads) == 2
    assert set(threads) == {threading.current_thread().name}  # this loop's thread


_STUCK_PROGRAM = """
import asyncio, threading, time
from blocks_network import AsyncTaskClient

entered = threading.Event()

def stuck_provider():
    entered.set()
    threading.Event().wait()  # a blocking call that never returns

async def main():
    creating = asyncio.ensure_future(AsyncTaskClient.create("free", token_provider=stuck_provider))
    deadline = time.monotonic() + 30
    while not entered.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    print("stuck" if entered.is_set() else "never entered", flush=True)
    creating.cancel()

asyncio.run(main())
print("main returned", flush=True)
"""


def test_a_process_whose_blocking_call_is_stuck_exits_at_the_end_of_main(
    blocks_env: dict[str, str],
) -> None:
    # asyncio.to_thread's threads are not daemons: asyncio.run (and then the interpreter)
    # would wait for the stuck call for ever. The client's pool threads are daemons.
    finished = subprocess.run(
        [sys.executable, "-c", _STUCK_PROGRAM],
        env={**os.environ, **blocks_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.stdout.split() == ["stuck", "main", "returned"], finished.stderr
    assert finished.returncode == 0, finished.stderr


def _file_and_inline(payload: bytes, file_name: str) -> Callable[[Responder, StartTask], None]:
    def handler(responder: Responder, task: StartTask) -> None:
        responder.agent.start(task)
        responder.upload_output(task, payload, file_name, "application/octet-stream")
        responder.publish_inline(task, b"small")
        responder.agent.finish(task)

    return handler


def _no_thread(*_: object, **__: object) -> None:
    raise AssertionError("the async client read history or a file through the sync client")


async def test_files_history_and_resends_are_read_over_aiohttp(
    client: AsyncTaskClient, agent: Responder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_session, "fetch_history", _no_thread)
    monkeypatch.setattr(task_session, "download_artifact", _no_thread)
    payload = os.urandom(1024 * 1024 + 5)
    agent.handler = _file_and_inline(payload, "result file.bin")
    parts = [text_part("go")]
    async with await client.send_message("echo", parts, idempotency_key="files-1") as session:
        assert (await session.wait_for_terminal(timeout=WAIT)).state == "completed"
        file_ref, inline_ref = await session.list_artifacts()
        assert isinstance(file_ref, FileArtifactRef)
        downloaded = await session.download_artifact(file_ref)
        assert downloaded.data == payload and downloaded.file_name == "result file.bin"
        assert (await session.download_artifact(inline_ref)).data == b"small"
        paths = await session.save_artifacts(tmp_path / "out")
        assert [p.name for p in paths] == ["result file.bin", "artifact-1"]
        assert paths[0].read_bytes() == payload and paths[1].read_bytes() == b"small"
        live = [(e.type, e.state) for e in session.sync.events]
    # History: connect, and an idempotent re-send, see the whole task.
    async with await client.connect(session.task_id) as connected:
        assert connected.is_terminal
        assert [(e.type, e.state) for e in connected.sync.events] == live
        assert (await connected.download_artifact(file_ref)).data == payload
    async with await client.send_message("echo", parts, idempotency_key="files-1") as again:
        assert again.task_id == session.task_id and again.is_terminal
        assert [(e.type, e.state) for e in again.sync.events] == live


async def test_a_refused_token_gives_the_sync_errors_for_files_and_history(
    client: AsyncTaskClient, agent: Responder, network: LocalNetwork
) -> None:
    agent.handler = _file_and_inline(b"x" * 20_000, "f.bin")
    async with await client.send_message("echo", [text_part("go")]) as session:
        await session.wait_for_terminal(timeout=WAIT)
        file_ref, _ = await session.list_artifacts()
        # A real token, for another org's task channel: the server refuses it (403). (The
        # owner's other tasks would not do: its T4 reads its own org's task channels.)
        subscribe_key = session.sync._realtime.subscribe_key
        keyset = next(k for k in network.keysets.values() if k.subscribe_key == subscribe_key)
        foreign = await asyncio.to_thread(
            network.call, lambda: grants.task_read_token(keyset, "org_elsewhere", "t_1")
        )
        session.sync._read_token = foreign
        with pytest.raises(ArtifactError, match="expired or does not cover that channel"):
            await session.download_artifact(file_ref)
        with pytest.raises(AuthError, match="denied: the task read token expired"):
            await client._catch_up(session.sync, None, follow=False)
        # The sync session, with that token, says the same.
        session.sync._pubnub = None
        with pytest.raises(ArtifactError, match="expired or does not cover that channel"):
            session.sync.download_artifact(file_ref)
        with pytest.raises(AuthError, match="denied: the task read token expired"):
            session.sync._catch_up(None, follow=False)
