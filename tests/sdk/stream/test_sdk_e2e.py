"""Streams through the public SDK against a real local network (agent runtime + TaskSession)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import StreamUnavailableError, TaskClient, text_part
from blocks_network.stream import StreamError
from blocks_network.types import StartTaskMessage, TaskContext

from .conftest import AgentFactory, stream_card


def test_bytes_stream_of_10_mb_byte_for_byte(start_agent: AgentFactory, client: TaskClient) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        stream = ctx.create_stream(subscribe_grace_ms=0)
        for i in range(0, len(payload), 100_000):
            stream.write(payload[i : i + 100_000])
        opened.wait(10)
        return {"artifacts": [{"data": "done", "mimeType": "text/plain"}]}

    start_agent(agent_name="big_bytes", handler=handler)
    with client.send_message("big_bytes", [text_part("go")], stream=True) as session:
        stream = session.wait_for_stream(timeout=15).open()
        opened.set()
        digest = hashlib.sha256()
        size = 0
        for chunk in stream.bytes(timeout=30):
            digest.update(chunk)
            size += len(chunk)
        assert size == len(payload)
        assert digest.digest() == hashlib.sha256(payload).digest()
        assert session.wait_for_terminal(timeout=30).state == "completed"


def test_events_stream_of_10000_in_order(start_agent: AgentFactory, client: TaskClient) -> None:
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0)
        for i in range(10_000):
            stream.write({"i": i})
        opened.wait(10)  # the task must not end before the consumer opened the stream

    start_agent(agent_name="many_events", handler=handler)
    with client.send_message("many_events", [text_part("go")], stream=True) as session:
        stream = session.wait_for_stream(timeout=15).open()
        opened.set()
        seen = [event["i"] for event in stream.events(timeout=30)]
        assert seen == list(range(10_000))
        assert session.wait_for_terminal(timeout=30).state == "completed"


def test_leaving_a_with_block_ends_the_stream_while_the_task_runs(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    seen_end = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        with ctx.create_stream(format="events", subscribe_grace_ms=0) as stream:
            for i in range(3):
                stream.write({"i": i})
        seen_end.wait(15)  # the task ends only once the consumer saw stream_end

    start_agent(agent_name="with_stream", handler=handler)
    with client.send_message("with_stream", [text_part("go")], stream=True) as session:
        stream = session.wait_for_stream(timeout=15).open()
        # The iterator finishes on stream_end, sent by the with block, not by the task's end.
        assert [event["i"] for event in stream.events(timeout=15)] == [0, 1, 2]
        assert not session.is_terminal
        seen_end.set()
        assert session.wait_for_terminal(timeout=15).state == "completed"


def test_request_streams_end_before_artifacts_and_terminal(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0, metadata={"model": "m1"})
        stream.write({"token": "a"})
        stream.write({"token": "b"})
        opened.wait(10)
        return {"artifacts": [{"data": "ab", "mimeType": "text/plain"}]}

    start_agent(agent_name="ordered", handler=handler)
    with client.send_message("ordered", [text_part("go")], stream=True) as session:
        ref = session.wait_for_stream(timeout=15)
        assert ref.descriptor.metadata == {"model": "m1"}
        assert ref.descriptor.declared_stream == "_default"
        assert ref.descriptor.local_direction == "inbound"
        stream = ref.open()
        opened.set()
        session.wait_for_terminal(timeout=15)
        # stream_end was published before the terminal: the stream is complete already.
        assert list(stream.events(timeout=5)) == [{"token": "a"}, {"token": "b"}]
        types = [e.type for e in session.events]
        assert types.index("artifact") < types.index("terminal")


def test_streaming_not_negotiated_fails_the_task(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        ctx.create_stream()

    start_agent(agent_name="no_stream", handler=handler)
    with client.send_message("no_stream", [text_part("go")], stream=False) as session:
        terminal = session.wait_for_terminal(timeout=15)
        assert terminal.state == "failed"
        assert "Streaming was not negotiated" in (terminal.data.get("error") or "")
        assert session.list_streams() == []


def test_late_open_reads_everything_within_the_drain_window(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    written = threading.Event()
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0)
        for i in range(300):
            stream.write({"i": i})
        stream.end()
        written.set()
        opened.wait(10)

    start_agent(agent_name="late_open", handler=handler)
    with client.send_message("late_open", [text_part("go")], stream=True) as session:
        ref = session.wait_for_stream(timeout=15)
        assert written.wait(10)
        stream = ref.open()  # after the writer finished: the replay buffer has it all
        opened.set()
        session.wait_for_terminal(timeout=15)
        assert [e["i"] for e in stream.events(timeout=10)] == list(range(300))


def test_connect_after_terminal_makes_never_opened_streams_unavailable(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        ctx.create_stream(subscribe_grace_ms=0).write("gone")
        return {"artifacts": [{"data": "kept", "mimeType": "text/plain"}]}

    start_agent(agent_name="finished", handler=handler)
    with client.send_message("finished", [text_part("go")], stream=True) as session:
        session.wait_for_terminal(timeout=15)
        task_id = session.task_id
    with client.connect(task_id) as resumed:
        assert resumed.is_terminal
        (ref,) = resumed.list_streams()
        assert ref.descriptor.format == "bytes" and ref.descriptor.declared_stream == "_default"
        with pytest.raises(StreamUnavailableError) as info:
            ref.open()
        err = info.value
        assert isinstance(err, RuntimeError)
        assert (err.task_id, err.stream_id, err.terminal_state) == (
            task_id,
            ref.stream_id,
            "completed",
        )
        assert err.declared_stream == "_default"
        assert resumed.open_all_streams() == []
        assert [a.KIND for a in resumed.list_artifacts()] == ["inline"]


def test_writer_dying_mid_stream_ends_the_reader_after_the_drain_window(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0, max_latency_ms=0)
        opened.wait(10)
        stream.write({"i": 0})
        stream.write({"i": 1})
        stream.flush()
        stream.abort()  # the writer dies: no stream_end will ever be published
        raise RuntimeError("writer crashed")

    start_agent(agent_name="dying", handler=handler)
    session = client.send_message("dying", [text_part("go")], stream=True, drain_window_s=1.0)
    with session:
        stream = session.wait_for_stream(timeout=15).open()
        opened.set()
        got = [next(stream.events(timeout=10)), next(stream.events(timeout=10))]
        started = time.monotonic()
        assert list(stream.events(timeout=15)) == []  # ends with the drain window, no hang
        assert time.monotonic() - started < 10
        assert got == [{"i": 0}, {"i": 1}]
        assert session.wait_for_terminal(timeout=5).state == "failed"


def test_token_revocation_mid_stream_is_fatal_and_the_loop_exits(
    start_agent: AgentFactory, client: TaskClient, network: LocalNetwork
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0, max_latency_ms=5)
        i = 0
        while not ctx.cancel_event.wait(0.01):
            stream.write({"i": i})
            i += 1

    start_agent(agent_name="revoked", handler=handler)
    with client.send_message("revoked", [text_part("go")], stream=True) as session:
        ref = session.wait_for_stream(timeout=15)
        stream = ref.open()
        errors: list[StreamError] = []
        stream.on_error(errors.append)
        key, token = network.keysets["playground"].subscribe_key, ref.descriptor.token
        seen = 0
        for _event in stream.events(timeout=10):
            seen += 1
            if seen == 5:
                network.call(lambda: network.context.realtime.access.revoke(key, token))
        assert seen >= 5
        assert [e.category for e in errors if e.fatal] == ["access_denied"]
        assert (
            stream.fatal_error is not None and stream.fatal_error.channel == ref.descriptor.channel
        )
        session.cancel()
        assert session.wait_for_terminal(timeout=15).state == "canceled"


def test_on_activate_crash_fails_the_task_with_stream_crashed(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    released = threading.Event()

    def boom(stream: Any) -> None:
        stream.write("partial")
        raise ValueError("producer bug")

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        ctx.create_stream(on_activate=boom, subscribe_grace_ms=0)
        released.wait(15)

    start_agent(agent_name="crashy", handler=handler)
    try:
        with client.send_message("crashy", [text_part("go")], stream=True) as session:
            terminal = session.wait_for_terminal(timeout=15)
            assert terminal.state == "failed"
            assert terminal.data.get("error") == "stream_crashed"
    finally:
        released.set()


def chat_card() -> dict[str, Any]:
    return stream_card(
        "chatty",
        {"chat": {"direction": "bidirectional", "format": "events"}},
        pipe=True,
    )


def test_bidirectional_chat_never_sees_its_own_echo(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(subscribe_grace_ms=0)  # the card's only stream: "chat"
        assert stream.direction == "bidirectional" and stream.declared_stream == "chat"
        for message in stream.events(timeout=15):
            stream.write({"echo": message["text"]})
            stream.flush()
            if message["text"] == "bye":
                return

    start_agent(agent_name="chatty", handler=handler, card=chat_card())
    session = client.send_message("chatty", [text_part("hi")], task_kind="pipe", duration=5)
    with session:
        ref = session.wait_for_stream("chat", timeout=15)
        assert ref.descriptor.readable and ref.descriptor.writable
        chat = ref.open()
        replies = chat.events(timeout=10)
        heard = []
        for word in ("hello", "how are you", "bye"):
            chat.write({"text": word})
            chat.flush()
            heard.append(next(replies))
        assert heard == [{"echo": "hello"}, {"echo": "how are you"}, {"echo": "bye"}]
        assert all("text" not in h for h in heard)
        assert session.open_all_streams() == [chat]


def test_inbound_stream_consumer_writes_agent_reads(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    card = stream_card("sink", {"upload": {"direction": "inbound", "format": "bytes"}}, pipe=True)
    payload = os.urandom(200_000)
    done = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream()
        data = stream.read_all(timeout=15)
        ctx.publish_artifact(hashlib.sha256(data).hexdigest(), mime_type="text/plain")
        done.set()

    handle = start_agent(agent_name="sink", handler=handler, card=card)
    with client.send_message("sink", [text_part("go")], task_kind="pipe", duration=5) as session:
        ref = session.wait_for_stream("upload", timeout=15)
        assert ref.descriptor.local_direction == "outbound" and not ref.descriptor.readable
        assert session.open_all_streams() == []  # outbound-only streams are not opened
        upload = ref.open()
        with pytest.raises(TypeError):
            next(upload.bytes())
        upload.write(payload)
        upload.end()  # stream_end: the agent's read_all returns
        assert done.wait(15)
        handle.publish_terminal(session.task_id, {"state": "completed"})
        session.wait_for_terminal(timeout=15)
        (artifact,) = session.list_artifacts()
        assert (
            session.download_artifact(artifact).data.decode() == hashlib.sha256(payload).hexdigest()
        )


def test_three_named_streams_and_a_shared_broadcast(
    start_agent: AgentFactory, client: TaskClient
) -> None:
    card = stream_card(
        "studio",
        {
            "tokens": {"direction": "outbound", "format": "events"},
            "audio": {"direction": "outbound", "format": "bytes"},
            "broadcast": {"direction": "outbound", "format": "events", "affinity": "shared"},
        },
        pipe=True,
    )
    joined: dict[str, threading.Event] = {}
    go = threading.Event()
    shared: list[Any] = []

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        role = task.request_parts[0]["text"]
        if role == "first":
            tokens = ctx.create_stream(declared_stream="tokens", subscribe_grace_ms=0)
            audio = ctx.create_stream(declared_stream="audio", subscribe_grace_ms=0)
            broadcast = ctx.create_stream(declared_stream="broadcast", subscribe_grace_ms=0)
            shared.append(broadcast)
            joined["first"].set()
            assert go.wait(15)
            for i in range(3):
                tokens.write({"t": i})
            audio.write(b"\x00\x01\x02")
            broadcast.write({"news": 1})
        else:
            again = ctx.create_stream(declared_stream="broadcast", subscribe_grace_ms=0)
            assert again is shared[0]  # one handle per instance for a shared stream
            joined["second"].set()
            assert go.wait(15)

    joined["first"], joined["second"] = threading.Event(), threading.Event()
    handle = start_agent(agent_name="studio", handler=handler, card=card, concurrency=2)
    first = client.send_message("studio", [text_part("first")], task_kind="pipe", duration=5)
    assert joined["first"].wait(15)
    second = client.send_message("studio", [text_part("second")], task_kind="pipe", duration=5)
    assert joined["second"].wait(15)
    with first, second:
        names = [r.descriptor.declared_stream for r in first.list_streams()]
        assert names == ["tokens", "audio", "broadcast"]
        assert first.wait_for_stream("broadcast").stream_id == "broadcast"
        assert first.wait_for_stream("tokens").stream_id == f"{first.task_id}-1"
        tokens, audio, news_a = first.open_all_streams()
        news_b = second.wait_for_stream("broadcast", timeout=15).open()
        assert second.wait_for_stream().descriptor.affinity == "shared"
        go.set()
        assert [next(tokens.events(timeout=10)) for _ in range(3)] == [{"t": 0}, {"t": 1}, {"t": 2}]
        assert next(audio.bytes(timeout=10)) == b"\x00\x01\x02"
        assert next(news_a.events(timeout=10)) == {"news": 1}
        assert next(news_b.events(timeout=10)) == {"news": 1}
        # The first task ends: its dedicated streams end, the shared one lives on for the second.
        handle.publish_terminal(first.task_id, {"state": "completed"})
        assert list(tokens.events(timeout=10)) == []
        assert list(audio.bytes(timeout=10)) == []
        assert not shared[0].closed
        shared[0].write({"news": 2})
        assert next(news_b.events(timeout=10)) == {"news": 2}
        handle.publish_terminal(second.task_id, {"state": "completed"})
        first.wait_for_terminal(timeout=15)
        second.wait_for_terminal(timeout=15)
        assert shared[0].closed
