"""A raw HTTP/1.1 client for fuzzing: it sends what no official client ever would.

Raw sockets, so the request target may hold non-UTF-8 bytes, query keys may repeat and
bodies may lie about their type; one fresh connection per request (``Connection: close``).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

#: Longest a single fuzz request may take before the test calls it a hang.
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RawRequest:
    method: bytes
    #: Path segments as sent (already percent-encoded, or raw garbage bytes).
    segments: tuple[bytes, ...]
    #: Query pairs as sent; ``None`` as a value sends the key without ``=``.
    query: tuple[tuple[bytes, bytes | None], ...] = ()
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""

    @property
    def path(self) -> bytes:
        return b"/" + b"/".join(self.segments)

    @property
    def target(self) -> bytes:
        if not self.query:
            return self.path
        items = [key if value is None else key + b"=" + value for key, value in self.query]
        return self.path + b"?" + b"&".join(items)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def with_header(self, name: bytes, value: bytes) -> RawRequest:
        kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        return replace(self, headers=(*kept, (name, value)))

    def describe(self) -> str:
        target = self.target
        shown = target if len(target) <= 200 else target[:200] + b"...(%d bytes)" % len(target)
        return f"{self.method!r} {shown!r} body={len(self.body)} bytes headers={self.headers!r}"[
            :800
        ]


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def encode(port: int, request: RawRequest, *, close: bool = True) -> bytes:
    """The request's bytes; ``close=False`` leaves the connection open for the next one."""
    lines = [request.method + b" " + request.target + b" HTTP/1.1"]
    names = {key.lower() for key, _ in request.headers}
    if b"host" not in names:
        lines.append(b"Host: 127.0.0.1:%d" % port)
    if b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(request.body))
    lines += [key + b": " + value for key, value in request.headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.body


def statuses_in(raw: bytes, methods: Sequence[bytes] = ()) -> list[int]:
    """Status codes of the responses in a pipelined stream, in order (a response without a
    Content-Length ends the stream, as it ends the connection). ``methods`` are the requests'
    methods in order: the answer to a HEAD has a Content-Length but no body."""
    statuses: list[int] = []
    while raw:
        is_head = len(methods) > len(statuses) and methods[len(statuses)] == b"HEAD"
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"an incomplete response at the end: {raw[:200]!r}")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        statuses.append(int(status_line.split(" ", 2)[1]))
        lengths = [
            line.partition(":")[2].strip()
            for line in header_lines
            if line.partition(":")[0].strip().lower() == "content-length"
        ]
        if not lengths:
            break
        raw = rest if is_head else rest[int(lengths[0]) :]
    return statuses


def send(
    port: int, request: RawRequest, *, timeout: float = REQUEST_TIMEOUT_SECONDS
) -> RawResponse:
    """Send ``request`` on a fresh connection (``Connection: close``) and read the answer.

    Raises ``TimeoutError`` if the server does not answer within ``timeout``.
    """
    data = encode(port, request)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before it reads a large body.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(256 * 1024)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def parse_response(raw: bytes) -> RawResponse:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete HTTP response; got {raw[:200]!r}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    elif "content-length" in headers:
        rest = rest[: int(headers["content-length"])]
    return RawResponse(status, headers, rest)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def q(text: str) -> bytes:
    """Percent-encode a whole segment or value (``/`` included)."""
    return quote(text, safe="").encode()


def segments(path: str) -> tuple[bytes, ...]:
    return tuple(part.encode() for part in path.strip("/").split("/"))
