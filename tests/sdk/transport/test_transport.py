"""Transport.handle_request (and TokenPublisher over it): keep-alive reuse, Content-Length
and chunked answers, stale connections, errors."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from blocks_network.errors import NetworkError
from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.base import Request, Transport
from blocks_network.transport.connections import HttpResponse, format_headers, split_origin
from blocks_network.transport.publisher import TokenPublisher
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from tests.support.tcp_server import AcceptLoop


class Poster:
    """POSTs through a :class:`Transport` of its own, as the stream publisher sends them."""

    def __init__(self, origin: str, *, user_agent: str) -> None:
        host, port = split_origin(origin, 80)
        self.origin = ("http", host, port)
        self.head = format_headers({"User-Agent": user_agent, "Content-Type": "application/json"})
        self.transport = Transport()

    def post(self, path: str, body: bytes, timeout: float) -> HttpResponse:
        return self.transport.handle_request(
            Request("POST", self.origin, path, self.head, body, timeout)
        )

    def close(self) -> None:
        self.transport.close()


def _publisher(origin: str) -> TokenPublisher:
    return TokenPublisher(RealtimeEndpoint(origin=origin, ssl=False), Keyset("pub", "sub"))


class RawServer:
    """Answers each request on a connection with the next canned response, records requests."""

    def __init__(self, responses: list[bytes], *, close_after: int | None = None) -> None:
        self.responses = responses
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self.loop = AcceptLoop(self._accepted)
        self.origin = f"127.0.0.1:{self.loop.port}"

    def _accepted(self, conn: socket.socket) -> None:
        self.connections += 1
        threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        served = 0
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                data = rest[length:]
                conn.sendall(self.responses[min(len(self.requests), len(self.responses)) - 1])
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    return

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def ok_server() -> Iterator[RawServer]:
    body = b'[1,"Sent","17000000000000000"]'
    server = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)])
    yield server
    server.close()


def test_posts_reuse_one_connection(ok_server: RawServer) -> None:
    pool = Poster(ok_server.origin, user_agent="ua/1")
    for i in range(5):
        reply = pool.post(f"/publish/p/s/0/ch/0?n={i}", b'{"a":1}', 5)
        assert reply.status == 200 and reply.json() == [1, "Sent", "17000000000000000"]
    assert ok_server.connections == 1
    first = ok_server.requests[0]
    assert first.startswith(b"POST /publish/p/s/0/ch/0?n=0 HTTP/1.1\r\n")
    assert b"User-Agent: ua/1\r\n" in first and b"Content-Type: application/json\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a":1}')
    pool.close()


def test_chunked_answers_and_error_statuses() -> None:
    server = RawServer(
        [
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n',
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
        ]
    )
    try:
        pool = Poster(server.origin, user_agent="ua")
        first = pool.post("/x", b"{}", 5)
        assert first.status == 403 and first.json() == {"a": 1}
        second = pool.post("/x", b"{}", 5)
        assert second.status == 200 and second.body == b"[]"
        assert server.connections == 1
        pool.close()
    finally:
        server.close()


def test_a_connection_the_server_closed_is_replaced_once() -> None:
    body = b"[]"
    server = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body], close_after=1)
    try:
        pool = Poster(server.origin, user_agent="ua")
        assert pool.post("/a", b"{}", 5).status == 200
        assert pool.post("/b", b"{}", 5).status == 200  # the idle one was closed: reconnect
        assert server.connections == 2
        pool.close()
    finally:
        server.close()


def test_connection_close_header_is_honoured() -> None:
    server = RawServer([b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]"])
    try:
        pool = Poster(server.origin, user_agent="ua")
        pool.post("/a", b"{}", 5)
        pool.post("/b", b"{}", 5)
        assert server.connections == 2
    finally:
        server.close()


def test_unreachable_and_garbage_raise_network_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(NetworkError, match="could not publish"):
        _publisher(f"127.0.0.1:{port}").post("/a", b"{}", timeout=2)
    server = RawServer([b"SSH-2.0-nope\r\n\r\n"])
    try:
        with pytest.raises(NetworkError, match="not an HTTP response"):
            _publisher(server.origin).post("/a", b"{}", timeout=2)
    finally:
        server.close()


def testsplit_origin() -> None:
    assert split_origin("127.0.0.1:8080", 80) == ("127.0.0.1", 8080)
    assert split_origin("ps.pndsn.com", 443) == ("ps.pndsn.com", 443)
    assert split_origin("[::1]:9000", 80) == ("::1", 9000)
    assert split_origin("[::1]", 443) == ("::1", 443)
