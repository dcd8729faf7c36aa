"""A session's subscribe loop (plain HTTP long-polls) and the poll threads it runs on."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from blocks_network.errors import ClosedError
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import (
    ChannelSubscription,
    PollConnections,
    SubscriptionSink,
)
from tests.sdk.stub_server import Recorded, stub_server

WAIT = 10.0


def _envelope(tt: int, messages: list[tuple[int, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "t": {"t": str(tt), "r": 7},
        "m": [{"c": "u.o.t", "d": d, "p": {"t": str(t), "r": 7}, **extra} for t, d in messages],
    }


class _Sink:
    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[object, int | None]] = queue.Queue()
        self.denied = threading.Event()

    def sink(self) -> SubscriptionSink:
        return SubscriptionSink(lambda m, tt, _meta: self.messages.put((m, tt)), self.denied.set)


def _subscription(
    url: str, sink: SubscriptionSink, threads: PollThreads, timeout_s: float | None = None
) -> ChannelSubscription:
    endpoint = RealtimeEndpoint(origin=urlsplit(url).netloc, ssl=False)
    connections = (
        PollConnections(endpoint)
        if timeout_s is None
        else PollConnections(endpoint, timeout_s=timeout_s)
    )
    return ChannelSubscription(
        endpoint=endpoint,
        subscribe_key="sub-c-1",
        channel="u.o.t",
        token="tok-1",
        user_id="session-user",
        cursor=100,
        sink=sink,
        threads=threads,
        connections=connections,
    )


def _query(request: Recorded) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}


def test_messages_arrive_in_order_and_the_cursor_advances() -> None:
    release = threading.Event()

    def respond(request: Recorded) -> tuple[int, Any]:
        tt = _query(request)["tt"]
        if tt == "100":
            return 200, _envelope(300, [(200, {"n": 1}), (300, {"n": 2})])
        if tt == "300":
            # A file event (e=4) is not a task event: skipped.
            return 200, _envelope(400, [(400, {"file": {}})], e=4)
        release.wait(WAIT)
        return 200, _envelope(int(tt), [])

    sink = _Sink()
    threads = PollThreads()
    with stub_server(respond) as server:
        subscription = _subscription(server.url, sink.sink(), threads)
        subscription.start()
        assert sink.messages.get(timeout=WAIT) == ({"n": 1}, 200)
        assert sink.messages.get(timeout=WAIT) == ({"n": 2}, 300)
        server.wait_requests(3)
        first, second, third = (_query(r) for r in server.requests[:3])
        assert server.requests[0].path.startswith("/v2/subscribe/sub-c-1/u.o.t/0?")
        assert first["auth"] == "tok-1" and first["uuid"] == "session-user"
        assert "tr" not in first and (second["tt"], second["tr"]) == ("300", "7")
        assert third["tt"] == "400"
        assert sink.messages.empty()
        subscription.stop()  # aborts the held poll
        release.set()
        threads.close()
    assert threads.size == 0


def test_a_refused_subscribe_reports_denied_once_and_stops() -> None:
    sink = _Sink()
    threads = PollThreads()
    with stub_server(lambda r: (403, {"error": True, "status": 403})) as server:
        subscription = _subscription(server.url, sink.sink(), threads)
        subscription.start()
        assert sink.denied.wait(WAIT)
        threads.close()
        assert len(server.requests) == 1 and subscription.stopped


def test_stop_from_the_delivery_callback_ends_the_loop_without_another_poll() -> None:
    sink_calls: list[object] = []
    done = threading.Event()
    holder: list[ChannelSubscription] = []

    def on_message(message: object, tt: int | None, meta: object) -> None:
        sink_calls.append(message)
        holder[0].stop()  # what a session does on the terminal event
        done.set()

    threads = PollThreads()
    with stub_server(lambda r: (200, _envelope(300, [(200, "a"), (300, "b")]))) as server:
        subscription = _subscription(
            server.url, SubscriptionSink(on_message, lambda: None), threads
        )
        holder.append(subscription)
        subscription.start()
        assert done.wait(WAIT)
        threads.close()
        assert sink_calls == ["a"] and len(server.requests) == 1


def test_server_errors_are_retried_from_the_same_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    from blocks_network.transport import subscription as module

    monkeypatch.setattr(module, "RETRY_DELAYS_S", (0.01, 0.02))
    answers = iter([(500, {"error": True}), (200, _envelope(200, [(200, "ok")]))])
    sink = _Sink()
    threads = PollThreads()

    def respond(request: Recorded) -> tuple[int, Any]:
        return next(answers, (200, _envelope(200, [])))

    with stub_server(respond) as server:
        subscription = _subscription(server.url, sink.sink(), threads)
        subscription.start()
        assert sink.messages.get(timeout=WAIT) == ("ok", 200)
        subscription.stop()
        threads.close()
        assert [_query(r)["tt"] for r in server.requests[:2]] == ["100", "100"]


def test_poll_threads_are_reused_and_end_when_idle() -> None:
    threads = PollThreads(idle_timeout_s=0.2)
    ran: queue.Queue[int] = queue.Queue()
    threads.submit(lambda: ran.put(threading.get_ident()))
    first = ran.get(timeout=WAIT)
    deadline = time.monotonic() + WAIT
    # The finished job's thread waits for the next one and takes it.
    threads.submit(lambda: ran.put(threading.get_ident()))
    assert ran.get(timeout=WAIT) == first and threads.size == 1
    while threads.size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads.size == 0
    threads.close()
    with pytest.raises(ClosedError):
        threads.submit(lambda: None)


def test_a_poll_that_outlives_the_client_timeout_is_sent_again_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from blocks_network.transport import subscription as module

    monkeypatch.setattr(module, "RETRY_DELAYS_S", (60.0, 60.0))  # a failure would stall
    held = threading.Event()
    sink = _Sink()
    threads = PollThreads()

    def respond(request: Recorded) -> tuple[int, Any]:
        if not held.is_set():
            held.set()
            time.sleep(1.0)  # the server holds the poll past the client's 0.2 s timeout
        return 200, _envelope(200, [(200, "after")])

    with stub_server(respond) as server:
        subscription = _subscription(server.url, sink.sink(), threads, timeout_s=0.2)
        subscription.start()
        assert sink.messages.get(timeout=WAIT) == ("after", 200)
        subscription.stop()
        threads.close()
        assert [_query(r)["tt"] for r in server.requests[:2]] == ["100", "100"]
