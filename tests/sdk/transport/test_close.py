"""close() really closes: a request in flight is aborted and its socket closed (never put
back into a pool), and every later request raises ClosedError."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from blocks_network.errors import ClosedError
from blocks_network.protocol.cdm import Keyset
from blocks_network.transport import subscription
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.publisher import TokenPublisher
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.retry import RetryPolicy
from blocks_network.transport.subscription import (
    ChannelSubscription,
    PollConnections,
    SubscriptionSink,
)
from tests.sdk.stub_server import dead_url
from tests.support.threads import start_call

WAIT = 10.0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class HoldingServer:
    """Accepts one connection, reads its request and never answers; records whether the
    client closed the connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.got_request = threading.Event()
        self.client_closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            conn.settimeout(WAIT)
            conn.recv(65536)
            self.got_request.set()
            try:
                if conn.recv(1) == b"":  # the client hung up instead of waiting
                    self.client_closed.set()
                    return
            except TimeoutError:
                pass

    def close(self) -> None:
        self._thread.join(WAIT)
        self._listener.close()


@contextmanager
def holding_server() -> Iterator[HoldingServer]:
    server = HoldingServer()
    try:
        yield server
    finally:
        server.close()


def test_close_aborts_a_request_in_flight_and_leaks_no_socket() -> None:
    client = HttpClient()
    with holding_server() as server:
        baseline = _open_fds()
        caller, errors = start_call(
            lambda: client.request("GET", f"{server.url}/slow", timeout=60.0)
        )
        assert server.got_request.wait(WAIT)
        client.close()
        # The answer would take 60 s: only the abort ends the call this soon.
        caller.join(WAIT)
        assert not caller.is_alive()
        assert server.client_closed.wait(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], ClosedError)
    assert _open_fds() <= baseline
    with pytest.raises(ClosedError):
        client.request("GET", f"{server.url}/after")
    with pytest.raises(ClosedError):
        client.start("GET", f"{server.url}/after").result()


def test_close_aborts_a_publish_in_flight_and_closes_its_socket() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    got = threading.Event()
    hung_up = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            got.set()
            conn.settimeout(WAIT)
            if conn.recv(1) == b"":  # never answered: only the client's abort ends this
                hung_up.set()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    endpoint = RealtimeEndpoint(origin=f"127.0.0.1:{listener.getsockname()[1]}", ssl=False)
    pool = TokenPublisher(endpoint, Keyset("pub", "sub"))
    baseline = _open_fds()
    poster, errors = start_call(lambda: pool.post("/publish", b"{}", timeout=60.0))
    assert got.wait(WAIT)
    pool.close()
    # No answer ever comes: only the abort ends the post.
    poster.join(WAIT)
    assert not poster.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ClosedError)
    assert hung_up.wait(WAIT)  # not kept for reuse: the pool was closed
    server.join(WAIT)
    listener.close()
    assert _open_fds() < baseline
    with pytest.raises(ClosedError):
        pool.post("/publish", b"{}", timeout=WAIT)


def test_poll_connections_refuse_after_close() -> None:
    connections = PollConnections(RealtimeEndpoint(origin="127.0.0.1:9", ssl=False))
    connections.give_back(connections.take())
    connections.close()
    with pytest.raises(ClosedError):
        connections.take()


def test_close_during_a_retry_back_off_ends_the_request_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="blocks_network.transport.http_client")
    # A minute between tries: only close() can end the wait this soon.
    client = HttpClient(retry=RetryPolicy(attempts=5, base_s=60.0, cap_s=60.0))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.request("GET", f"{dead_url()}/nobody")
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + WAIT
    while "retrying" not in caplog.text:  # the first try failed: the back-off began
        assert time.monotonic() < deadline, "the first try never failed"
        time.sleep(0.01)
    client.close()
    caller.join(WAIT)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ClosedError)


def _subscription(
    url: str, failed: Callable[[str], None]
) -> tuple[ChannelSubscription, PollThreads, PollConnections]:
    """A subscription to ``url`` (not started) on threads and connections of its own;
    ``failed`` hears each failed poll's description."""
    endpoint = RealtimeEndpoint(origin=url.removeprefix("http://"), ssl=False)
    threads = PollThreads()
    connections = PollConnections(endpoint)
    loop = ChannelSubscription(
        endpoint=endpoint,
        subscribe_key="sub-c-1",
        channel="u.o.t",
        token=None,
        user_id="u",
        cursor=0,
        sink=SubscriptionSink(lambda *_: None, lambda: None, failed=lambda _, why: failed(why)),
        threads=threads,
        connections=connections,
    )
    return loop, threads, connections


def test_stop_during_the_subscription_back_off_ends_its_thread_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A minute between polls: only stop() can end the wait this soon.
    monkeypatch.setattr(subscription, "RETRY", RetryPolicy(None, 60.0, 60.0))
    failed = threading.Event()
    loop, threads, connections = _subscription(dead_url(), lambda _: failed.set())
    loop.start()
    assert failed.wait(WAIT)  # the back-off begins right after the report
    loop.stop()
    threads.close()
    connections.close()
    assert threads.size == 0


def test_closing_the_connections_ends_a_held_subscription_without_stop() -> None:
    reports: list[str] = []
    with holding_server() as server:
        loop, threads, connections = _subscription(server.url, reports.append)
        loop.start()
        assert server.got_request.wait(WAIT)
        connections.close()  # the owner closes; nobody stopped the subscription
        assert server.client_closed.wait(WAIT)
        threads.close()  # joins: a loop still retrying (on a new socket) would hold it
        assert threads.size == 0
        assert connections.transport.pool.checked_out == 0
        assert reports == []  # the abort is the close, not a failure to report or retry
