"""PlainConnection reads answers as http.client does, and writes well-formed requests."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from blocks_network.transport.connections import (
    PlainConnection,
    format_headers,
    host_header,
    split_origin,
)


def _fed_socket(raw: bytes) -> socket.socket:
    """The reading end of a socket pair that holds ``raw`` and then the end of the stream."""
    reader, writer = socket.socketpair()
    writer.sendall(raw)
    writer.close()
    return reader


def _plain(raw: bytes) -> tuple[object, ...]:
    conn = PlainConnection("127.0.0.1", 80, timeout=5.0)
    conn.sock = _fed_socket(raw)
    response, keep = conn.read_response()
    conn.close()
    return response.status, dict(response.headers), response.body, not keep


def _reference(raw: bytes) -> tuple[object, ...]:
    sock = _fed_socket(raw)
    response = http.client.HTTPResponse(sock, method="GET")
    response.begin()
    body = response.read()
    sock.close()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, body, response.will_close


RESPONSES = [
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n[1,"a"]',
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
    b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\n\r\nno length: read to the end",
    b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\nConnection: keep-alive\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nsuperscript: no length",
    b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    b"HTTP/1.1  200  OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 199941\r\n\r\n" + bytes(range(256)) * 781 + b"xyzab",
]


@pytest.mark.parametrize("raw", RESPONSES)
def test_reads_like_http_client(raw: bytes) -> None:
    assert _plain(raw) == _reference(raw)


def test_a_folded_header_line_does_not_break_the_answer() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\nContent-Length: 2\r\n\r\nok"
    status, headers, body, _ = _plain(raw)
    assert (status, body, headers["content-length"]) == (200, b"ok", "2")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", http.client.LineTooLong),
        (
            b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
            http.client.HTTPException,
        ),
        (b"SPDY/3 200 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 2\xb20 OK\r\n\r\n", http.client.BadStatusLine),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            http.client.HTTPException,
        ),
        (b"", http.client.RemoteDisconnected),
        (b"HTTP/1.1 200 OK\r\nContent-Le", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            http.client.IncompleteRead,
        ),
    ],
)
def test_bad_or_cut_answers_fail_with_http_client_errors(
    raw: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _plain(raw)


def test_a_server_that_closed_an_idle_connection_is_a_remote_disconnect() -> None:
    # What a retried request on a reused keep-alive connection must recognise.
    assert issubclass(http.client.RemoteDisconnected, ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        _plain(b"")


def test_requests_are_written_whole_and_keep_alive_answers_are_read_in_turn() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        peer, _ = server.accept()
        data = b""
        for answer in (b"first", b"second!"):
            while data.count(b"\r\n\r\n") < 1:
                data += peer.recv(65536)
            head, _, data = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(v)
                    for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n"))
                    if k.lower() == b"content-length"
                ),
                0,
            )
            while len(data) < length:
                data += peer.recv(65536)
            received.append(head + b"\r\n\r\n" + data[:length])
            data = data[length:]
            peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        peer.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    conn = PlainConnection("127.0.0.1", port, timeout=5.0)
    conn.request("GET", "/time/0?uuid=u", "Accept-Encoding: identity\r\n")
    first, keep = conn.read_response()
    conn.request("POST", "/publish/p/s/0/ch/0", format_headers({"X-A": "1"}), b'{"n":1}')
    second, _ = conn.read_response()
    thread.join(5)
    server.close()
    conn.close()
    assert (first.body, second.body, keep) == (b"first", b"second!", True)
    assert (
        received[0]
        == (
            f"GET /time/0?uuid=u HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept-Encoding: identity\r\n\r\n"
        ).encode()
    )
    assert (
        received[1]
        == (
            f"POST /publish/p/s/0/ch/0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            'X-A: 1\r\nContent-Length: 7\r\n\r\n{"n":1}'
        ).encode()
    )


@pytest.mark.parametrize("target", ["/a b", "/a\r\nX: 1", "/é"])
def test_a_target_that_would_break_the_request_line_is_refused(target: str) -> None:
    conn = PlainConnection("127.0.0.1", 1, timeout=1.0)
    with pytest.raises(http.client.InvalidURL):
        conn.request("GET", target, "")
    assert conn.sock is None  # refused before connecting


@pytest.mark.parametrize("headers", [{"X-A": "1\r\nX-B: 2"}, {"Bad Name": "1"}, {"X-A": "nul\x00"}])
def test_headers_that_would_break_the_request_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        format_headers(headers)


def test_host_headers_and_origins() -> None:
    assert host_header("127.0.0.1", 80, 80) == "127.0.0.1"
    assert host_header("::1", 8080, 80) == "[::1]:8080"
    assert host_header("ps.pndsn.com", 443, 443) == "ps.pndsn.com"
    assert split_origin("[::1]:9000", 80) == ("::1", 9000)


def test_bytes_left_over_after_an_answer_mean_the_connection_is_not_reused() -> None:
    conn = PlainConnection("127.0.0.1", 80, timeout=5.0)
    reader, writer = socket.socketpair()
    writer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSURPLUS")
    conn.sock = reader
    response, keep = conn.read_response()
    writer.close()
    assert (response.body, keep, conn.sock) == (b"ok", False, None)
