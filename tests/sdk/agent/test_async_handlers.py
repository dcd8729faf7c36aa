"""``async def`` handlers end to end: a real local network, real consumers (docs/async.md)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import (
    AgentInstance,
    AsyncTaskClient,
    AsyncTaskContext,
    start_agent_instance_async,
)
from blocks_network.agent.async_runner import is_async_handler
from blocks_network.consumer import TaskClient, file_part, text_part
from blocks_network.errors import ClosedError
from blocks_network.types import AgentInstanceOptions, StartTaskMessage
from tests.sdk.agent.agent_process import AgentProcess, clean_env, write_card_project
from tests.sdk.agent.conftest import AgentFactory
from tests.sdk.agent.raw_control import RawControl, next_event
from tests.sdk.agent.test_handlers_e2e import _card

WAIT_S = 15.0
OCTETS = "application/octet-stream"


def _finish(consumer: TaskClient, agent: str, parts: list[Any]) -> tuple[Any, list[Any], list[Any]]:
    with consumer.send_message(agent, parts) as session:
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        artifacts = [session.download_artifact(ref) for ref in session.list_artifacts()]
        events = list(session.events)
    return terminal, artifacts, events


def _task_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("blocks-task-")]


class _Call:
    async def __call__(self, task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        return None


def test_async_handlers_are_recognised_and_sync_ones_are_not() -> None:
    async def coro(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        return None

    assert is_async_handler(coro) and is_async_handler(_Call())
    assert not is_async_handler(lambda task, ctx: None) and not is_async_handler(None)


def test_status_artifacts_and_result_from_the_instances_loop_thread(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    threads: list[str] = []

    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        await ctx.report_status("thinking")
        await asyncio.sleep(0.01)
        ref = await ctx.publish_artifact("draft", mime_type="text/plain", output_id="draft")
        assert ref.mime_type == "text/plain"
        text = task.request_parts[0]["text"]
        return {"artifacts": [{"data": text.upper(), "mimeType": "text/plain"}]}

    start_agent(agent_name="async_upper", handler=handler)
    terminal, artifacts, events = _finish(consumer, "async_upper", [text_part("hi")])
    assert terminal.state == "completed", terminal.data
    assert [a.data for a in artifacts] == [b"draft", b"HI"]
    assert [e.data.get("message") for e in events if e.type == "progress"][-1:] == ["thinking"]
    assert threads == ["blocks-async-handlers"]
    assert _task_threads() == []  # no worker thread was started for the task


def test_download_input_artifact_inline_and_uploaded(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> dict[str, Any]:
        got = [await ctx.download_input_artifact(part) for part in task.request_parts]
        digests = [[hashlib.sha256(g.data).hexdigest(), g.file_name] for g in got]
        return {"artifacts": [{"data": json.dumps(digests), "mimeType": "application/json"}]}

    card = _card("async_reader", inputs=[("small", OCTETS), ("big", OCTETS)])
    start_agent(agent_name="async_reader", handler=handler, card=card)
    small, big = os.urandom(100), os.urandom(200_000)
    parts = [
        file_part(small, part_id="small", file_name="s.bin"),
        file_part(big, part_id="big", file_name="b.bin"),
    ]
    terminal, artifacts, _ = _finish(consumer, "async_reader", parts)
    assert terminal.state == "completed", terminal.data
    assert json.loads(artifacts[0].data) == [
        [hashlib.sha256(small).hexdigest(), "s.bin"],
        [hashlib.sha256(big).hexdigest(), "b.bin"],
    ]


def test_tokens_streamed_with_async_with_and_await_write(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    opened = asyncio.Event()
    opened_flag = threading.Event()

    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        async with ctx.create_stream(format="events", subscribe_grace_ms=0) as stream:
            for i in range(200):
                await stream.write({"token": i})
            # The task must not end before the consumer opened the stream.
            while not opened_flag.is_set():
                await asyncio.sleep(0.01)
        assert not opened.is_set()

    start_agent(agent_name="async_tokens", handler=handler)
    with consumer.send_message("async_tokens", [text_part("go")], stream=True) as session:
        stream = session.wait_for_stream(timeout=WAIT_S).open()
        opened_flag.set()
        assert [e["token"] for e in stream.events(timeout=WAIT_S)] == list(range(200))
        assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"


def test_cancel_reaches_the_handler_as_cancelled_error_and_ends_it_canceled(
    start_agent: AgentFactory, consumer: TaskClient, tmp_path: Path
) -> None:
    marker = tmp_path / "cancelled"
    started = threading.Event()

    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # waits forever: only cancellation ends it
        except asyncio.CancelledError:
            marker.write_text(f"cancelled={ctx.cancelled.is_set()}")
            raise

    start_agent(agent_name="async_forever", handler=handler)
    with consumer.send_message("async_forever", [text_part("x")]) as session:
        assert started.wait(WAIT_S)
        session.cancel()
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        states = [e.data.get("state") for e in session.events if e.type == "terminal"]
    assert terminal.state == "canceled"
    assert states == ["canceled"]  # exactly one terminal
    assert marker.read_text() == "cancelled=True"


class Forever:
    """An async handler that waits until cancelled, and records how it was stopped."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped: list[str] = []

    async def __call__(self, task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.stopped.append(
                f"cancelled={ctx.cancelled.is_set()} terminated={ctx.is_terminated} "
                f"expired={ctx.is_expired}"
            )
            raise


def test_terminate_reaches_the_handler_and_ends_it_canceled_terminated(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    handler = Forever()
    handle = start_agent(agent_name="async_term", handler=handler)
    raw: RawControl = raw_control(handle)
    task_id, watch = raw.start_task()
    assert watch is not None and handler.started.wait(WAIT_S)
    raw.publish({"type": "TerminateTask", "taskId": task_id, "agentName": "async_term"})
    terminal = next_event(watch, "terminal")
    assert (terminal["state"], terminal["reason"]) == ("canceled", "terminated")
    assert handler.stopped == ["cancelled=True terminated=True expired=False"]


def test_stop_cancels_a_waiting_handler_and_ends_its_task_once(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    handler = Forever()
    handle = start_agent(agent_name="async_stop", handler=handler)
    with consumer.send_message("async_stop", [text_part("x")]) as session:
        assert handler.started.wait(WAIT_S)
        handle.stop(grace_s=0.2)
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        terminals = [e for e in session.events if e.type == "terminal"]
    assert (terminal.state, terminal.data.get("reason")) == ("canceled", "instance_shutdown")
    assert len(terminals) == 1
    assert handler.stopped == ["cancelled=True terminated=False expired=False"]
    assert "blocks-async-handlers" not in [t.name for t in threading.enumerate()]


def test_pipe_deadline_expires_an_async_handler_completed(
    start_agent: AgentFactory, raw_control: Any
) -> None:
    seen: list[str] = []

    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append(f"expired={ctx.is_expired}")
            raise

    handle = start_agent(agent_name="async_pipe", handler=handler)
    raw: RawControl = raw_control(handle)
    soon = int(time.time() * 1000) + 300
    _, watch = raw.start_task(taskKind="pipe", duration=1, durationExpiresAtMs=soon)
    assert watch is not None
    terminal = next_event(watch, "terminal")
    assert (terminal["state"], terminal["completionReason"]) == ("completed", "duration_expired")
    assert seen == ["expired=True"]


def test_exception_fails_the_task_with_its_type_name(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        await asyncio.sleep(0)
        raise ValueError("the model answered nonsense")

    start_agent(agent_name="async_broken", handler=handler)
    terminal, _, _ = _finish(consumer, "async_broken", [text_part("x")])
    assert (terminal.state, terminal.data["error"]) == (
        "failed",
        "ValueError: the model answered nonsense",
    )


def test_concurrency_limit_holds_back_the_next_task_without_threads(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    running: list[str] = []
    release = threading.Event()

    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        running.append(task.task_id)
        while not release.is_set():
            await asyncio.sleep(0.01)

    start_agent(agent_name="async_gated", handler=handler, concurrency=2)
    sessions = [consumer.send_message("async_gated", [text_part(str(i))]) for i in range(3)]
    try:
        deadline = time.monotonic() + WAIT_S
        while len(running) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(running) == 2
        # The third waits in the network's backlog while two run (as for sync handlers).
        assert not sessions[2].is_terminal and sessions[2].task_id not in running
        release.set()
        states = [s.wait_for_terminal(timeout=WAIT_S).state for s in sessions]
    finally:
        release.set()
        for s in sessions:
            s.close()
    assert states == ["completed"] * 3
    assert sorted(running) == sorted(s.task_id for s in sessions)


def test_an_async_orchestrator_fans_out_through_ctx_task_client(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    from blocks_network.handlers.echo import echo_handler

    async def ask(ctx: AsyncTaskContext, text: str) -> bytes:
        session = await ctx.task_client.send_message("echo", [text_part(text)])
        async with session:
            terminal = await session.wait_for_terminal(timeout=WAIT_S)
            assert terminal.state == "completed", terminal.data
            refs = await session.list_artifacts()
            return (await session.download_artifact(refs[0])).data

    async def orchestrator(task: StartTaskMessage, ctx: AsyncTaskContext) -> dict[str, Any]:
        answers = await asyncio.gather(*(ask(ctx, f"part {i}") for i in range(3)))
        return {"artifacts": [{"data": b" | ".join(answers), "mimeType": "text/plain"}]}

    start_agent(agent_name="echo", handler=echo_handler)
    handle = start_agent(agent_name="async_boss", handler=orchestrator)
    terminal, artifacts, _ = _finish(consumer, "async_boss", [text_part("go")])
    assert terminal.state == "completed", terminal.data
    assert artifacts[0].data == b" | ".join(b"Echoed request: part %d" % i for i in range(3))
    # The async client wraps the instance's embedded one (same credentials, one core).
    assert handle["task_client"].created
    handle["stop"](0)
    with pytest.raises(ClosedError):
        handle["task_client"].get_user_id()


def test_ctx_task_client_on_the_callers_loop_is_closed_when_the_instance_stops(
    start_agent: AgentFactory, agent_env: LocalNetwork, consumer: TaskClient
) -> None:
    from blocks_network.handlers.echo import echo_handler

    start_agent(agent_name="echo", handler=echo_handler)
    used: list[AsyncTaskClient] = []

    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        used.append(await ctx.task_client.client())
        async with await ctx.task_client.send_message("echo", [text_part("hi")]) as inner:
            await inner.wait_for_terminal(timeout=WAIT_S)

    async def main() -> str:
        options = AgentInstanceOptions(agent_name="async_loop_boss", handler=handler)
        async with AgentInstance(options):
            terminal, _, _ = await asyncio.to_thread(
                _finish, consumer, "async_loop_boss", [text_part("go")]
            )
        # Stopped: its aiohttp connections were closed on this loop, and the shared core too.
        assert used[0]._http._closed
        with pytest.raises(ClosedError):
            await used[0].get_task("t_any")
        return str(terminal.state)

    assert asyncio.run(main()) == "completed"


def test_async_with_agent_instance_runs_handlers_on_the_callers_loop(
    agent_env: LocalNetwork, consumer: TaskClient
) -> None:
    async def main() -> tuple[str, bool]:
        loop_thread = threading.current_thread().name
        seen: list[bool] = []

        async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> dict[str, Any]:
            seen.append(asyncio.get_running_loop() is loop)
            return {"artifacts": [{"data": "ok", "mimeType": "text/plain"}]}

        loop = asyncio.get_running_loop()
        options = AgentInstanceOptions(agent_name="async_caller_loop", handler=handler)
        async with AgentInstance(options):
            terminal, artifacts, _ = await asyncio.to_thread(
                _finish, consumer, "async_caller_loop", [text_part("x")]
            )
        assert artifacts[0].data == b"ok"
        assert "blocks-async-handlers" not in [t.name for t in threading.enumerate()]
        return f"{terminal.state}:{loop_thread}", seen == [True]

    assert asyncio.run(main()) == ("completed:MainThread", True)


def test_start_agent_instance_async_returns_a_running_handle(
    agent_env: LocalNetwork, consumer: TaskClient
) -> None:
    async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> None:
        await ctx.report_status("on the caller's loop")

    async def main() -> str:
        handle = await start_agent_instance_async(
            AgentInstanceOptions(agent_name="async_started", handler=handler)
        )
        try:
            terminal, _, _ = await asyncio.to_thread(
                _finish, consumer, "async_started", [text_part("x")]
            )
        finally:
            await asyncio.to_thread(handle["stop"], 0)
        return str(terminal.state)

    assert asyncio.run(main()) == "completed"


ASYNC_CARD_HANDLER = """
    import asyncio
    import pathlib

    async def run(task, ctx):
        text = task.request_parts[0]["text"]
        if text.startswith("wait:"):  # waits until canceled, then leaves a marker file
            try:
                await ctx.report_status("waiting")
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pathlib.Path(text.removeprefix("wait:")).write_text("CancelledError")
                raise
        await ctx.report_status("reversing")
        return {"artifacts": [{"data": text[::-1], "mimeType": "text/plain"}]}
"""


def test_blocks_run_card_mode_runs_an_async_handler_file_and_cancels_it(
    network: LocalNetwork, tmp_path: Path
) -> None:
    write_card_project(tmp_path, ASYNC_CARD_HANDLER)
    env = clean_env()
    env.update(network.env())
    marker = tmp_path / "cancelled.txt"
    proc = AgentProcess([], cwd=tmp_path, env=env)
    try:
        proc.wait_line("running (press Ctrl+C to stop)")
        client = TaskClient.create("free", api_key=network.api_key, cdm_url=network.cdm_url)
        with client:
            with client.send_message("card_agent", [text_part("stressed")]) as session:
                terminal = session.wait_for_terminal(timeout=WAIT_S)
                assert terminal.state == "completed", terminal.data
                assert session.download_artifact(session.list_artifacts()[0]).data == b"desserts"
            with client.send_message("card_agent", [text_part(f"wait:{marker}")]) as session:
                deadline = time.monotonic() + WAIT_S
                while not any(e.data.get("message") == "waiting" for e in session.events):
                    assert time.monotonic() < deadline, "the task never started"
                    time.sleep(0.02)
                session.cancel()
                assert session.wait_for_terminal(timeout=WAIT_S).state == "canceled"
        assert marker.read_text() == "CancelledError"
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0
    finally:
        proc.close()
