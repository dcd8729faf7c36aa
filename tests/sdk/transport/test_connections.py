"""FastResponse reads responses exactly as http.client's own HTTPResponse does."""

from __future__ import annotations

import http.client
import io

import pytest

from blocks_network.transport.connections import FastResponse, new_connection


class _Socket:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self._data))  # type: ignore[arg-type]


def _read(
    cls: type[http.client.HTTPResponse], raw: bytes, method: str = "GET"
) -> tuple[object, ...]:
    response = cls(_Socket(raw), method=method)  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    return (
        response.status,
        response.reason,
        response.version,
        response.getheaders(),
        response.getheader("content-type"),
        response.will_close,
        body,
    )


RESPONSES = [
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n[1,"a"]',
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    b"HTTP/1.1 200 OK\r\n\r\nno length: read to the end",
    b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\nConnection: keep-alive\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nabc",
]


@pytest.mark.parametrize("raw", RESPONSES)
def test_reads_like_http_client(raw: bytes) -> None:
    assert _read(FastResponse, raw) == _read(http.client.HTTPResponse, raw)


def test_head_responses_have_no_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    assert _read(FastResponse, raw, "HEAD") == _read(http.client.HTTPResponse, raw, "HEAD")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", http.client.LineTooLong),
        (
            b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
            http.client.HTTPException,
        ),
        (b"SPDY/3 200 OK\r\n\r\n", http.client.HTTPException),
    ],
)
def test_bad_header_blocks_fail_like_http_client(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        _read(http.client.HTTPResponse, raw)
    with pytest.raises(error):
        _read(FastResponse, raw)


def test_new_connections_answer_with_fast_responses() -> None:
    assert new_connection("127.0.0.1", 1, timeout=1.0).response_class is FastResponse
    secure = new_connection("example.com", secure=True, timeout=1.0)
    assert isinstance(secure, http.client.HTTPSConnection)
    assert secure.response_class is FastResponse
