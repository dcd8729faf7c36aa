"""The sessions' poll loop: waiting polls hold no thread, over TLS too."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blocks_devnet.local_ca import ensure_tls_files
from blocks_network.transport.poll_loop import WORKER_THREADS, MultiplexedSubscription, PollLoop
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import PollConnections, SubscriptionSink

WAIT = 10.0
#: More held polls than the loop has workers: a poll that held one would starve the rest.
POLLS = 2 * WORKER_THREADS + 1


class _SilentServer:
    """Accepts connections (with ``context``, TLS 1.3 ones: the server sends its session
    tickets after the handshake) and reads each poll without ever answering it."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._context = context
        self.requests = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(raw,), daemon=True).start()

    def _hold(self, raw: socket.socket) -> None:
        try:
            conn = (
                raw if self._context is None else self._context.wrap_socket(raw, server_side=True)
            )
            conn.recv(65536)  # the poll: never answered
        except OSError:
            raw.close()
            return
        with self._lock:
            self.requests += 1
            self._conns.append(conn)

    def closed_by_client(self) -> int:
        """Held connections the client has closed (a read sees their end at once)."""
        with self._lock:
            conns = list(self._conns)
        ended = 0
        for conn in conns:
            try:
                conn.setblocking(False)
                ended += conn.recv(1) == b""
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            except OSError:
                ended += 1
        return ended

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_SilentServer]:
    files = ensure_tls_files(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca_cert))
    context = files.server_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    server = _SilentServer(context)
    yield server
    server.close()


@pytest.fixture
def silent_server() -> Iterator[_SilentServer]:
    server = _SilentServer()
    yield server
    server.close()


def _subscriptions(
    endpoint: RealtimeEndpoint, loop: PollLoop, connections: PollConnections, count: int
) -> list[MultiplexedSubscription]:
    sink = SubscriptionSink(lambda *_: None, lambda: None)
    return [
        MultiplexedSubscription(
            endpoint=endpoint,
            subscribe_key="sub-c-1",
            channel=f"u.o.t{i}",
            token=None,
            user_id="u",
            cursor=100,
            sink=sink,
            loop=loop,
            connections=connections,
        )
        for i in range(count)
    ]


def _start_and_wait(
    subs: list[MultiplexedSubscription], server: _SilentServer, loop: PollLoop
) -> None:
    """Start ``subs`` and wait until each one's poll reached ``server`` and waits in ``loop``."""
    for sub in subs:
        sub.start()
    _wait_until(
        lambda: server.requests == len(subs) and loop.watched == len(subs),
        lambda: f"{server.requests} polls sent, {loop.watched} waiting in the loop",
    )


def _wait_until(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.02)


def test_polls_waiting_on_fresh_tls_connections_hold_no_worker(
    tls_server: _SilentServer,
) -> None:
    endpoint = RealtimeEndpoint(origin=f"127.0.0.1:{tls_server.port}", ssl=True)
    loop = PollLoop()
    connections = PollConnections(endpoint)
    subs = _subscriptions(endpoint, loop, connections, POLLS)
    try:
        # The tickets make each socket readable before any answer: the loop must go back
        # to waiting on it rather than block a worker until the server answers.
        _start_and_wait(subs, tls_server, loop)
    finally:
        for sub in subs:
            sub.stop()
        loop.close()
        connections.close()


def test_stop_during_a_back_off_needs_no_timer_and_close_ends_every_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from blocks_network.transport import subscription as module
    from blocks_network.transport.retry import RetryPolicy

    # A minute between polls: only stop() and close() can end this soon.
    monkeypatch.setattr(module, "RETRY", RetryPolicy(None, 60.0, 60.0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens once closed
    endpoint = RealtimeEndpoint(origin=f"127.0.0.1:{port}", ssl=False)
    failed = threading.Event()
    loop = PollLoop()
    connections = PollConnections(endpoint)
    sub = MultiplexedSubscription(
        endpoint=endpoint,
        subscribe_key="sub-c-1",
        channel="u.o.t",
        token=None,
        user_id="u",
        cursor=0,
        sink=SubscriptionSink(lambda *_: None, lambda: None, failed=lambda *_: failed.set()),
        loop=loop,
        connections=connections,
    )
    sub.start()
    assert failed.wait(WAIT)  # the back-off timer is set right after the report
    sub.stop()
    started = time.monotonic()
    loop.close()
    connections.close()
    assert time.monotonic() - started < WAIT
    assert not [t for t in threading.enumerate() if t.name.startswith("blocks-session-poll")]


def test_stopping_waiting_polls_hands_every_connection_back_to_the_pool(
    silent_server: _SilentServer,
) -> None:
    endpoint = RealtimeEndpoint(origin=f"127.0.0.1:{silent_server.port}", ssl=False)
    loop = PollLoop()
    connections = PollConnections(endpoint)
    pool = connections.transport.pool
    subs = _subscriptions(endpoint, loop, connections, POLLS)
    try:
        _start_and_wait(subs, silent_server, loop)
        assert pool.checked_out == POLLS
        for sub in subs:
            sub.stop()
        # Each abandoned poll's connection is closed and leaves the pool's accounting.
        _wait_until(
            lambda: pool.checked_out == 0 and loop.watched == 0,
            lambda: f"{pool.checked_out} connections still checked out, {loop.watched} watched",
        )
        _wait_until(
            lambda: silent_server.closed_by_client() == POLLS,
            lambda: f"{silent_server.closed_by_client()} of {POLLS} connections closed",
        )
        assert pool.idle_count(connections.origin) == 0  # a half-used connection is never reused
    finally:
        loop.close()
        connections.close()
