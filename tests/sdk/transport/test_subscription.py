"""A channel's subscribe loop (plain HTTP long-polls) and the poll threads it runs on.

Every subscription test runs twice: with the thread-per-loop ChannelSubscription (agents'
control channel, stream readers) and the sessions' MultiplexedSubscription on a PollLoop.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from blocks_network.errors import ClosedError
from blocks_network.transport.poll_loop import MultiplexedSubscription, PollLoop
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.retry import RetryPolicy
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
        self.publishers: list[str | None] = []
        self.denied = threading.Event()
        self.failures: queue.Queue[tuple[str, str]] = queue.Queue()

    def _message(self, m: object, tt: int | None, _meta: object, publisher: str | None) -> None:
        self.publishers.append(publisher)
        self.messages.put((m, tt))

    def sink(self, *, report_failures: bool = False) -> SubscriptionSink:
        failed = (lambda why, text: self.failures.put((why, text))) if report_failures else None
        return SubscriptionSink(self._message, self.denied.set, failed=failed)


class _Threads(PollThreads):
    """Poll threads that, when ``multiplexed``, also carry a PollLoop (closed with them)."""

    def __init__(self, multiplexed: bool) -> None:
        super().__init__()
        self.loop = PollLoop(self) if multiplexed else None

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()
        super().close()


Subscription = ChannelSubscription | MultiplexedSubscription


@pytest.fixture(params=["thread-per-loop", "multiplexed"])
def make_threads(request: pytest.FixtureRequest) -> Callable[[], _Threads]:
    return lambda: _Threads(request.param == "multiplexed")


def _subscription(
    url: str, sink: SubscriptionSink, threads: _Threads, timeout_s: float | None = None
) -> Subscription:
    endpoint = RealtimeEndpoint(origin=urlsplit(url).netloc, ssl=False)
    connections = (
        PollConnections(endpoint)
        if timeout_s is None
        else PollConnections(endpoint, timeout_s=timeout_s)
    )
    common: dict[str, Any] = {
        "endpoint": endpoint,
        "subscribe_key": "sub-c-1",
        "channel": "u.o.t",
        "token": "tok-1",
        "user_id": "session-user",
        "cursor": 100,
        "sink": sink,
        "connections": connections,
    }
    if threads.loop is not None:
        return MultiplexedSubscription(loop=threads.loop, **common)
    return ChannelSubscription(threads=threads, **common)


def _query(request: Recorded) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}


def test_messages_arrive_in_order_and_the_cursor_advances(
    make_threads: Callable[[], _Threads],
) -> None:
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
    threads = make_threads()
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


def test_a_refused_subscribe_reports_denied_once_and_stops(
    make_threads: Callable[[], _Threads],
) -> None:
    sink = _Sink()
    threads = make_threads()
    with stub_server(lambda r: (403, {"error": True, "status": 403})) as server:
        subscription = _subscription(server.url, sink.sink(), threads)
        subscription.start()
        assert sink.denied.wait(WAIT)
        threads.close()
        assert len(server.requests) == 1 and subscription.stopped


def test_stop_from_the_delivery_callback_ends_the_loop_without_another_poll(
    make_threads: Callable[[], _Threads],
) -> None:
    sink_calls: list[object] = []
    done = threading.Event()
    holder: list[Subscription] = []

    def on_message(message: object, tt: int | None, meta: object, publisher: str | None) -> None:
        sink_calls.append(message)
        holder[0].stop()  # what a session does on the terminal event
        done.set()

    threads = make_threads()
    with stub_server(lambda r: (200, _envelope(300, [(200, "a"), (300, "b")]))) as server:
        subscription = _subscription(
            server.url, SubscriptionSink(on_message, lambda: None), threads
        )
        holder.append(subscription)
        subscription.start()
        assert done.wait(WAIT)
        threads.close()
        assert sink_calls == ["a"] and len(server.requests) == 1


def test_server_errors_are_retried_from_the_same_cursor(
    monkeypatch: pytest.MonkeyPatch, make_threads: Callable[[], _Threads]
) -> None:
    from blocks_network.transport import subscription as module

    monkeypatch.setattr(module, "RETRY", RetryPolicy(None, 0.01, 0.02))
    answers = iter([(500, {"error": True}), (200, _envelope(200, [(200, "ok")]))])
    sink = _Sink()
    threads = make_threads()

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


def test_capped_poll_threads_queue_jobs_in_order_and_strand_none() -> None:
    threads = PollThreads(idle_timeout_s=0.2, max_threads=2)
    release = threading.Event()
    ran: queue.Queue[int] = queue.Queue()

    def job(i: int) -> None:
        release.wait(WAIT)
        ran.put(i)

    for i in range(5):
        threads.submit(lambda i=i: job(i))  # type: ignore[misc]
    assert threads.size == 2  # the other three wait their turn
    release.set()
    assert sorted(ran.get(timeout=WAIT) for _ in range(5)) == [0, 1, 2, 3, 4]
    deadline = time.monotonic() + WAIT
    while threads.size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads.size == 0
    # Queued jobs taken by busy threads left no idle thread counted that is not there.
    threads.submit(lambda: ran.put(99))
    assert ran.get(timeout=WAIT) == 99
    threads.close()


def test_a_poll_that_outlives_the_client_timeout_is_sent_again_at_once(
    monkeypatch: pytest.MonkeyPatch, make_threads: Callable[[], _Threads]
) -> None:
    from blocks_network.transport import subscription as module

    monkeypatch.setattr(module, "RETRY", RetryPolicy(None, 60.0, 60.0))  # a failure would stall
    held = threading.Event()
    sink = _Sink()
    threads = make_threads()

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


def test_the_publisher_of_each_message_is_delivered(make_threads: Callable[[], _Threads]) -> None:
    answers = iter([(200, _envelope(200, [(200, "x")], i="agent-stream-0001"))])
    sink = _Sink()
    threads = make_threads()
    with stub_server(lambda r: next(answers, (200, _envelope(200, [])))) as server:
        subscription = _subscription(server.url, sink.sink(), threads)
        subscription.start()
        assert sink.messages.get(timeout=WAIT) == ("x", 200)
        subscription.stop()
        threads.close()
    assert sink.publishers == ["agent-stream-0001"]


def test_failed_polls_are_reported_with_the_official_clients_categories(
    monkeypatch: pytest.MonkeyPatch, make_threads: Callable[[], _Threads]
) -> None:
    from blocks_network.transport import subscription as module

    monkeypatch.setattr(module, "RETRY", RetryPolicy(None, 0.01, 0.02))
    answers = iter(
        [
            (400, {"message": "Invalid filter expression", "error": True, "status": 400}),
            (502, "bad gateway"),
            (200, ["not", "an", "envelope"]),
            (200, _envelope(200, [(200, "ok")])),
        ]
    )
    sink = _Sink()
    threads = make_threads()
    with stub_server(lambda r: next(answers, (200, _envelope(200, [])))) as server:
        subscription = _subscription(server.url, sink.sink(report_failures=True), threads)
        subscription.start()
        assert sink.messages.get(timeout=WAIT) == ("ok", 200)
        subscription.stop()
        threads.close()
    reported = [sink.failures.get_nowait() for _ in range(3)]
    assert reported == [
        ("bad_request", "HTTP 400: Invalid filter expression"),
        ("other", "HTTP 502"),
        ("malformed_response", "the subscribe response is not a subscribe envelope"),
    ]
    assert sink.failures.empty()


def test_a_sink_may_stop_the_loop_when_a_poll_fails(make_threads: Callable[[], _Threads]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    reported: list[tuple[str, str]] = []
    holder: list[Subscription] = []
    done = threading.Event()

    def failed(why: str, text: str) -> None:
        reported.append((why, text))
        holder[0].stop()
        done.set()

    threads = make_threads()
    sink = SubscriptionSink(lambda *a: None, lambda: None, failed=failed)
    holder.append(_subscription(f"http://127.0.0.1:{port}", sink, threads))
    holder[0].start()
    assert done.wait(WAIT)
    threads.close()
    assert threads.size == 0
    assert len(reported) == 1 and reported[0][0] == "network_down"


def test_a_stop_while_the_poll_connects_sends_no_poll(
    monkeypatch: pytest.MonkeyPatch, make_threads: Callable[[], _Threads]
) -> None:
    from blocks_network.transport import connections

    holder: list[Subscription] = []
    connected = threading.Event()
    real_connect = connections.PlainConnection.connect

    def stop_then_connect(conn: connections.PlainConnection) -> None:
        # The race: stop() lands while the socket is being opened (nothing to shut down yet).
        holder[0].stop()
        real_connect(conn)
        connected.set()

    monkeypatch.setattr(connections.PlainConnection, "connect", stop_then_connect)
    threads = make_threads()
    with stub_server() as server:
        subscription = _subscription(server.url, _Sink().sink(), threads)
        holder.append(subscription)
        subscription.start()
        assert connected.wait(WAIT)
        threads.close()  # joins the loop: it ended without polling
        assert server.requests == []
    assert threads.size == 0
