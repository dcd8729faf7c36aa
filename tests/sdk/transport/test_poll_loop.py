"""The sessions' poll loop: waiting polls hold no thread, over TLS too."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_devnet.local_ca import ensure_tls_files
from blocks_network.transport.poll_loop import WORKER_THREADS, MultiplexedSubscription, PollLoop
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import PollConnections, SubscriptionSink

WAIT = 10.0
#: More held polls than the loop has workers: a poll that held one would starve the rest.
POLLS = 2 * WORKER_THREADS + 1


class _SilentTlsServer:
    """Accepts TLS 1.3 connections (the server sends its session tickets after the
    handshake) and reads each poll without ever answering it."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._context = context
        self.requests = 0
        self._lock = threading.Lock()
        self._conns: list[ssl.SSLSocket] = []
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
            conn = self._context.wrap_socket(raw, server_side=True)
            conn.recv(65536)  # the poll: never answered
        except OSError:
            raw.close()
            return
        with self._lock:
            self.requests += 1
            self._conns.append(conn)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_SilentTlsServer]:
    files = ensure_tls_files(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca_cert))
    context = files.server_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    server = _SilentTlsServer(context)
    yield server
    server.close()


def test_polls_waiting_on_fresh_tls_connections_hold_no_worker(
    tls_server: _SilentTlsServer,
) -> None:
    endpoint = RealtimeEndpoint(origin=f"127.0.0.1:{tls_server.port}", ssl=True)
    loop = PollLoop()
    connections = PollConnections(endpoint)
    sink = SubscriptionSink(lambda *_: None, lambda: None)
    subs = [
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
        for i in range(POLLS)
    ]
    try:
        for sub in subs:
            sub.start()
        deadline = time.monotonic() + WAIT
        # The tickets make each socket readable before any answer: the loop must go back
        # to waiting on it rather than block a worker until the server answers.
        while not (tls_server.requests == POLLS and loop.watched == POLLS):
            assert time.monotonic() < deadline, (
                f"{tls_server.requests} polls sent, {loop.watched} waiting in the loop"
            )
            time.sleep(0.02)
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
