"""ConnectionPool: checkout/checkin, the idle limit, no reuse after close() or after an
exchange that failed midway; timeouts of a server that never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from blocks_network.errors import ClosedError, NetworkError
from blocks_network.transport.base import Request, Transport
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pool import ConnectionPool, Origin
from tests.sdk.stub_server import StubServer, stub_server
from tests.support.tcp_server import AcceptLoop
from tests.support.threads import start_call

WAIT = 10.0


@pytest.fixture
def server() -> Iterator[StubServer]:
    with stub_server(lambda _r: (200, {"ok": True}), keep_alive=True) as stub:
        yield stub


def _origin(url: str) -> Origin:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return ("http", host, int(port))


def test_a_checked_in_connection_is_reused_for_its_origin_only(server: StubServer) -> None:
    pool = ConnectionPool()
    transport = Transport(pool)
    origin = _origin(server.url)
    assert transport.handle_request(Request("GET", origin, "/a")).status == 200
    assert pool.idle_count(origin) == 1
    conn, reused = pool.checkout(origin)
    assert reused and conn.idle
    assert pool.idle_count(origin) == 0
    other, reused_other = pool.checkout(("http", "127.0.0.2", origin[2]))
    assert not reused_other and other is not conn and other.sock is None
    pool.checkin(conn)
    pool.discard(other)
    assert transport.handle_request(Request("GET", origin, "/b")).status == 200
    assert len({r.client for r in server.requests}) == 1  # one connection for both
    pool.close()


def test_idle_connections_beyond_the_limit_are_closed(server: StubServer) -> None:
    pool = ConnectionPool(max_idle=2)
    origin = _origin(server.url)
    conns = [pool.checkout(origin)[0] for _ in range(3)]
    for conn in conns:
        conn.connect()
    for conn in conns:
        pool.checkin(conn)
    assert pool.idle_count(origin) == 2
    assert conns[2].sock is None  # the third found no room
    pool.close()
    assert all(conn.sock is None for conn in conns)


def test_no_checkout_and_no_reuse_after_close(server: StubServer) -> None:
    pool = ConnectionPool()
    origin = _origin(server.url)
    conn, _ = pool.checkout(origin)
    conn.connect()
    pool.close()
    pool.checkin(conn)  # an exchange that ends after close(): its connection closes
    assert conn.sock is None and pool.idle_count(origin) == 0
    with pytest.raises(ClosedError):
        pool.checkout(origin)
    pool.close()  # twice is harmless


def test_a_connection_whose_exchange_failed_midway_is_never_reused() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    origin: Origin = ("http", "127.0.0.1", listener.getsockname()[1])
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        conn.recv(65536)
        # Half an answer: the body promised is never sent in full.
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        conn.shutdown(socket.SHUT_WR)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    pool = ConnectionPool()
    conn, _ = pool.checkout(origin, timeout=WAIT)
    conn.request("GET", "/partial", "")
    with pytest.raises(Exception) as caught:
        conn.read_response()
    assert not isinstance(caught.value, ClosedError)
    assert not conn.idle
    pool.checkin(conn)  # a careless caller gives it back: the pool still refuses it
    assert pool.idle_count(origin) == 0 and conn.sock is None
    server.join(WAIT)
    for sock in accepted:
        sock.close()
    listener.close()
    pool.close()


def test_a_request_sent_but_unanswered_is_not_reusable(server: StubServer) -> None:
    pool = ConnectionPool()
    origin = _origin(server.url)
    conn, _ = pool.checkout(origin)
    conn.request("GET", "/sent", "")
    assert not conn.idle  # its answer is still on the wire
    pool.checkin(conn)
    assert pool.idle_count(origin) == 0 and conn.sock is None
    pool.close()


class _SilentServer:
    """Accepts connections and reads, but never answers."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []
        self._loop = AcceptLoop(self._held.append)
        self.url = f"http://127.0.0.1:{self._loop.port}"

    def close(self) -> None:
        self._loop.close()
        for conn in self._held:
            conn.close()


def _call_in_thread(call: Callable[[], object]) -> list[BaseException]:
    thread, errors = start_call(call)
    thread.join(WAIT)
    assert not thread.is_alive(), "the request hung past its timeout"
    return errors


def test_a_server_that_never_answers_times_out() -> None:
    silent = _SilentServer()
    client = HttpClient()
    try:
        errors = _call_in_thread(
            lambda: client.request("GET", f"{silent.url}/x", timeout=0.3, retry_transient=False)
        )
    finally:
        client.close()
        silent.close()
    assert len(errors) == 1 and isinstance(errors[0], NetworkError)
    assert isinstance(errors[0].__cause__, TimeoutError)


def test_a_connect_that_is_never_accepted_times_out() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so connect()
    # waits for an answer that never comes.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(address)
    except TimeoutError:
        pass
    else:
        pytest.skip("this kernel accepts connections past a full backlog")
    finally:
        probe.close()
    client = HttpClient()
    try:
        errors = _call_in_thread(
            lambda: client.request(
                "GET", f"http://127.0.0.1:{address[1]}/x", timeout=0.3, retry_transient=False
            )
        )
    finally:
        client.close()
        for filler in fillers:
            filler.close()
        listener.close()
    assert len(errors) == 1 and isinstance(errors[0], NetworkError)
    assert isinstance(errors[0].__cause__, TimeoutError)
