"""The seed README's stream samples ("Handling Stream Errors", "Opening Task Streams", the
drain window, "Reconnecting to Terminal Tasks"), run as written against a local network.

Each sample's code is kept verbatim in a string and executed with only BLOCKS_CDM_URL and
BLOCKS_API_KEY set. Names the samples assume (``client``, ``ref``, ``consume``, ``sys``) are
provided; placeholder task ids are replaced by real ones.
"""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import TaskClient, text_part
from blocks_network.types import StartTaskMessage, TaskContext

from .conftest import AgentFactory, stream_card


def run_sample(code: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = dict(names)
    exec(compile(textwrap.dedent(code), "<seed sample>", "exec"), namespace)
    return namespace


class Consumed:
    """``consume(stream, name=None)``: reads a stream on a thread, keeps what it read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, list[Any]] = {}
        self.threads: list[threading.Thread] = []

    def __call__(self, stream: Any, name: str | None = None) -> None:
        key = name or stream.declared_stream or stream.stream_id

        def read() -> None:
            items = (
                list(stream.events(timeout=15))
                if stream.format == "events"
                else [b"".join(stream.bytes(timeout=15))]
            )
            with self.lock:
                self.data[key] = items

        thread = threading.Thread(target=read)
        self.threads.append(thread)
        thread.start()

    def join(self) -> dict[str, list[Any]]:
        for thread in self.threads:
            thread.join(20)
        return self.data


MULTI_STREAMS = {
    "tokens": {"direction": "outbound", "format": "events"},
    "audio": {"direction": "outbound", "format": "bytes"},
}


def multi_stream_handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    tokens = ctx.create_stream(declared_stream="tokens")  # default 1 s subscribe grace
    audio = ctx.create_stream(declared_stream="audio")
    for word in ("to", "be"):
        tokens.write({"token": word})
    audio.write(b"RIFF....")
    return {"artifacts": [{"data": "to be", "mimeType": "text/plain"}]}


@pytest.fixture
def multi_stream_agent(start_agent: AgentFactory) -> None:
    start_agent(
        agent_name="multi_stream_agent",
        handler=multi_stream_handler,
        card=stream_card("multi_stream_agent", MULTI_STREAMS, pipe=True),
    )


class SignalOpen:
    """A StreamRef whose ``open()`` also tells the agent the consumer is reading."""

    def __init__(self, ref: Any, opened: threading.Event) -> None:
        self._ref, self._opened = ref, opened

    def open(self) -> Any:
        client = self._ref.open()
        self._opened.set()
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ref, name)


def test_handling_stream_errors(
    start_agent: AgentFactory,
    client: TaskClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(subscribe_grace_ms=0)
        stream.write(b"hello ")
        stream.write("world\n")
        opened.wait(10)  # the task must not end before the sample opened the stream

    start_agent(agent_name="bytes_agent", handler=handler)
    import sys

    with client.send_message("bytes_agent", [text_part("go")], stream=True) as session:
        ref = session.wait_for_stream(timeout=15)
        run_sample(
            """
            from blocks_network.stream import StreamError

            stream = ref.open()

            def on_stream_error(err: StreamError) -> None:
                print(f"[stream] {err.category} fatal={err.fatal} channel={err.channel}")

            stream.on_error(on_stream_error)

            for chunk in stream.bytes():
                sys.stdout.buffer.write(chunk)
            """,
            ref=SignalOpen(ref, opened),
            sys=sys,
        )
        sys.stdout.flush()
    assert capsys.readouterr().out == "hello world\n"


def test_handling_stream_errors_revoked_token_ends_the_loop(
    start_agent: AgentFactory,
    client: TaskClient,
    network: LocalNetwork,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        stream = ctx.create_stream(subscribe_grace_ms=0, max_latency_ms=5)
        while not ctx.cancel_event.wait(0.01):
            stream.write(b".")

    start_agent(agent_name="endless", handler=handler)
    import sys

    with client.send_message("endless", [text_part("go")], stream=True) as session:
        ref = session.wait_for_stream(timeout=15)
        key = network.keysets["playground"].subscribe_key
        timer = threading.Timer(
            0.5,
            lambda: network.call(
                lambda: network.context.realtime.access.revoke(key, ref.descriptor.token)
            ),
        )
        timer.start()
        run_sample(
            """
            from blocks_network.stream import StreamError

            stream = ref.open()

            def on_stream_error(err: StreamError) -> None:
                print(f"[stream] {err.category} fatal={err.fatal} channel={err.channel}")

            stream.on_error(on_stream_error)

            for chunk in stream.bytes():
                sys.stdout.buffer.write(chunk)
            """,
            ref=ref,
            sys=sys,
        )
        timer.join()
        session.cancel()
        session.wait_for_terminal(timeout=15)
    out = capsys.readouterr().out
    assert out.startswith(".")
    line = f"[stream] access_denied fatal=True channel={ref.descriptor.channel}\n"
    assert out.count(line) == 1
    # The error callback runs on the subscribe thread: chunks already delivered before the
    # revocation may still be written after its line, then the loop ends.
    before, after = out.split(line)
    assert set(before) == {"."} and set(after.strip()) <= {"."}


def test_opening_task_streams_option_1_on_stream(
    multi_stream_agent: None, client: TaskClient
) -> None:
    consume = Consumed()
    ns = run_sample(
        """
        from blocks_network import TaskClient, text_part

        session = client.send_message(
            agent_name="multi_stream_agent",
            request_parts=[text_part("start")],
        )

        # Option 1 — react to each stream as it is announced
        def on_stream(ref):
            stream = ref.open()
            consume(stream, ref.descriptor.declared_stream)

        session.on_stream(on_stream)
        """,
        client=client,
        consume=consume,
    )
    session = ns["session"]
    with session:
        assert session.wait_for_terminal(timeout=20).state == "completed"
        assert consume.join() == {
            "tokens": [{"token": "to"}, {"token": "be"}],
            "audio": [b"RIFF...."],
        }


def test_opening_task_streams_option_2_open_all(
    multi_stream_agent: None, client: TaskClient
) -> None:
    consume = Consumed()
    ns = run_sample(
        """
        from blocks_network import TaskClient, text_part

        session = client.send_message(
            agent_name="multi_stream_agent",
            request_parts=[text_part("start")],
        )

        # Option 2 — open every readable stream in one call, then branch
        session.wait_for_stream()              # ensure at least one is announced
        streams = session.open_all_streams()   # returns List[StreamClient] in insertion order
        for s in streams:
            consume(s)
        """,
        client=client,
        consume=consume,
    )
    session = ns["session"]
    with session:
        assert session.wait_for_terminal(timeout=20).state == "completed"
        assert ns["streams"][0].declared_stream == "tokens"
        assert consume.join()["tokens"] == [{"token": "to"}, {"token": "be"}]
        # Idempotent: the same clients again, plus any announced since (still readable).
        again = session.open_all_streams()
        assert again[: len(ns["streams"])] == ns["streams"]


def test_drain_window_options(start_agent: AgentFactory, client: TaskClient) -> None:
    opened = threading.Event()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0)
        for token in ("stream", "ing"):
            stream.write({"token": token})
        if task.request_parts[0]["text"] == "stream please":
            opened.wait(10)
        return {"artifacts": [{"data": "streaming", "mimeType": "text/plain"}]}

    start_agent(
        agent_name="llm_streamer",
        handler=handler,
        card=stream_card(
            "llm_streamer", {"_default": {"direction": "outbound", "format": "events"}}
        ),
    )
    first = client.send_message("llm_streamer", [text_part("warm up")])
    first.wait_for_terminal(timeout=15)
    first.close()
    ns = run_sample(
        """
        # Narrower window for fast-shutdown flows
        session = client.send_message(
            agent_name="llm_streamer",
            request_parts=[text_part("stream please")],
            drain_window_s=5.0,   # 5 seconds
        )

        # Wider window for long-tail consumers, or on connect()
        resumed = client.connect(
            task_id="task-abc",
            drain_window_s=60.0,  # 60 seconds
        )
        """.replace("task-abc", first.task_id),
        client=client,
        text_part=text_part,
    )
    with ns["session"] as session, ns["resumed"] as resumed:
        assert session.drain_window_s == 5.0 and resumed.drain_window_s == 60.0
        stream = session.wait_for_stream(timeout=15).open()
        opened.set()
        assert list(stream.events(timeout=15)) == [{"token": "stream"}, {"token": "ing"}]
        assert session.wait_for_terminal(timeout=15).state == "completed"


def test_reconnecting_to_terminal_tasks(
    multi_stream_agent: None,
    client: TaskClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with client.send_message("multi_stream_agent", [text_part("start")]) as done:
        done.wait_for_terminal(timeout=20)
        task_id = done.task_id
    ns = run_sample(
        """
        from blocks_network import TaskClient, StreamUnavailableError

        session = client.connect(task_id="task-abc-123")

        for ref in session.list_streams():
            try:
                stream = ref.open()
                # ... consume stream ...
            except StreamUnavailableError as err:
                # Stream data is gone, but descriptor and artifacts remain:
                print("stream", ref.descriptor.declared_stream, err.terminal_state)

        # Artifacts produced by the finished task are still available:
        artifacts = session.list_artifacts()
        session.save_artifacts("./recovered")
        """.replace("task-abc-123", task_id),
        client=client,
    )
    ns["session"].close()
    assert capsys.readouterr().out.splitlines() == [
        "stream tokens completed",
        "stream audio completed",
    ]
    assert len(ns["artifacts"]) == 1
    assert (tmp_path / "recovered" / "artifact-0").read_bytes() == b"to be"
