"""Keep-alive HTTP/1.1 connections that write whole requests and read answers lightly.

``http.client`` spends about 110 µs of CPU per request on the reference machine (request
line and header validation, several writes, a buffered file object per response, header
objects) against about 40 µs for the socket calls themselves, and a task makes eight or so
requests. :class:`PlainConnection` writes each request with one ``sendall`` and parses
only what the SDK needs of an answer: the status, the headers as a dict, a body framed by
``Content-Length``, chunks or the end of the connection, and whether the server keeps the
connection open. It speaks HTTP/1.1, over TLS when asked, through the proxy the
environment names (``proxies.py``: a ``CONNECT`` tunnel for TLS, absolute-form requests
otherwise), and raises the same exceptions as ``http.client`` for the same failures, so
callers keep their error handling; a server certificate that does not verify raises
:class:`~blocks_network.errors.CertificateError` instead (no retry can fix it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from blocks_network.transport.proxies import connect_to_proxy, open_tunnel, proxy_for
from blocks_network.transport.tls import certificate_error

__all__ = ["HttpResponse", "PlainConnection", "format_headers", "host_header", "split_origin"]

#: Bounds on a response head (``http.client`` allows 100 headers of up to 64 KiB each).
_MAX_HEAD_BYTES: Final = 64 * 1024
_MAX_HEADERS: Final = 100
_RECV_BYTES: Final = 65536
#: Bodies above this are sent with a second ``sendall`` rather than copied onto the head.
_COPY_BODY_BYTES: Final = 64 * 1024
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
#: An RFC 9110 header name; values must not break the line (as ``http.client`` checks).
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LINE_BREAK: Final = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _is_number(text: str) -> bool:
    # isdigit() alone accepts superscripts ("²"), which int() refuses.
    return text.isascii() and text.isdigit()


def _content_length(text: str | None) -> int | None:
    """The body length a ``Content-Length`` value gives, None when it gives none."""
    if text is None:
        return None
    digits = text[1:] if text.startswith("+") else text
    return int(digits) if _is_number(digits) else None


def split_origin(origin: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port)."""
    if origin.startswith("["):
        host, _, tail = origin[1:].partition("]")
        return host, int(tail[1:]) if tail.startswith(":") else default_port
    host, sep, port = origin.rpartition(":")
    if sep and _is_number(port) and ":" not in host:
        return host, int(port)
    return origin, default_port


def host_header(host: str, port: int, default_port: int) -> str:
    """The ``Host`` value ``http.client`` sends for ``host``/``port``."""
    name = f"[{host}]" if ":" in host else host
    return name if port == default_port else f"{name}:{port}"


def format_headers(headers: Mapping[str, str]) -> str:
    """``Name: value\\r\\n`` lines; raises ValueError for a name or value that would break
    the request (as ``http.client`` does)."""
    lines = []
    for name, value in headers.items():
        text = str(value)
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"Invalid header name {name!r}")
        if _LINE_BREAK.search(text):
            raise ValueError(f"Invalid header value {text!r}")
        lines.append(f"{name}: {text}\r\n")
    return "".join(lines)


class PlainConnection:
    """One keep-alive connection to ``host:port``; one request at a time (not thread-safe).

    :attr:`sock` is None until :meth:`connect` (or the first request) and after :meth:`close`.
    Another thread may ``shutdown()`` :attr:`sock` to abort a blocked read.
    """

    __slots__ = (
        "_buffer",
        "_host_line",
        "_open_requests",
        "_proxy_head",
        "_target_prefix",
        "_tls",
        "_unsent",
        "host",
        "port",
        "sock",
        "timeout",
    )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._tls = tls
        self._host_line = f"Host: {host_header(host, port, 443 if tls else 80)}\r\n"
        self.sock: socket.socket | None = None
        self._buffer = b""
        # Requests written with defer=True, sent with the next request or read.
        self._unsent = b""
        # Requests sent (or begun) whose answers were not read whole: not reusable while >0.
        self._open_requests = 0
        # Through a proxy, plain HTTP requests name the origin and carry the proxy's auth.
        self._target_prefix = ""
        self._proxy_head = ""

    def connect(self) -> None:
        """Open the socket (through the environment's proxy, if any) and, for TLS, shake
        hands. Raises OSError subclasses, :class:`~blocks_network.errors.ProxyError`, or
        :class:`~blocks_network.errors.CertificateError` for a certificate that does not
        verify."""
        proxy = proxy_for("https" if self._tls else "http", self.host, self.port)
        self._target_prefix = self._proxy_head = ""
        if proxy is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        elif self._tls is not None:
            sock = open_tunnel(proxy, self.host, self.port, self.timeout)
        else:
            sock = connect_to_proxy(proxy, self.timeout)
            self._target_prefix = f"http://{host_header(self.host, self.port, 80)}"
            self._proxy_head = proxy.auth_line
        self._buffer = b""
        self._open_requests = 0
        try:
            # Small requests and pushes must not wait for Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is None:
                self.sock = sock
                return
            tls = self._tls.wrap_socket(
                sock, server_hostname=self.host, do_handshake_on_connect=False
            )
        except BaseException:
            sock.close()
            raise
        # Visible before the handshake, so another thread's shutdown() can interrupt it.
        self.sock = tls
        try:
            tls.do_handshake()
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise certificate_error(self.host, self.port, exc) from exc
        except BaseException:
            self.close()
            raise

    def unread(self, data: bytes) -> None:
        """Put ``data``, received by the caller on :attr:`sock`, back before what the next
        read receives (a caller that polled the socket without blocking)."""
        self._buffer = data + self._buffer

    def set_timeout(self, timeout: float) -> None:
        if timeout == self.timeout:
            return  # settimeout() is a system call; the socket already has this one
        self.timeout = timeout
        if self.sock is not None:
            self.sock.settimeout(timeout)

    @property
    def idle(self) -> bool:
        """Open, with every answer read whole and nothing left over: safe to reuse."""
        return (
            self.sock is not None
            and self._open_requests == 0
            and not self._buffer
            and not self._unsent
        )

    def close(self) -> None:
        sock, self.sock = self.sock, None
        self._buffer = b""
        self._unsent = b""
        self._open_requests = 0
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def request(
        self,
        method: str,
        target: str,
        head: str,
        body: bytes | None = None,
        *,
        defer: bool = False,
    ) -> None:
        """Send ``method target`` with the header lines ``head`` (see :func:`format_headers`;
        ``Host`` and ``Content-Length`` are added) and ``body``; connects first if needed.
        ``defer``: keep it, to go out in one write with the next request (or before the
        next read), so pipelined requests reach the server together."""
        if not target.isascii() or not target.isprintable() or " " in target:
            raise http.client.InvalidURL(f"URL can't contain control characters: {target!r}")
        if body is not None or method in _BODY_METHODS:
            head += f"Content-Length: {len(body or b'')}\r\n"
        if self.sock is None:
            self.connect()
        self._open_requests += 1
        data = (
            f"{method} {self._target_prefix}{target} HTTP/1.1\r\n"
            f"{self._host_line}{self._proxy_head}{head}\r\n"
        ).encode("latin-1")
        sock = self.sock
        assert sock is not None
        if defer:
            self._unsent += data + body if body else data
            return
        if self._unsent:
            data, self._unsent = self._unsent + data, b""
        if body and len(body) > _COPY_BODY_BYTES:
            sock.sendall(data)
            sock.sendall(body)
        else:
            sock.sendall(data + body if body else data)

    def flush(self) -> None:
        """Send the requests kept with ``defer=True`` now."""
        if self._unsent and self.sock is not None:
            data, self._unsent = self._unsent, b""
            self.sock.sendall(data)

    def read_response(self, *, more: bool = False) -> tuple[HttpResponse, bool]:
        """The answer to the request sent, and whether the connection may be reused.

        ``more``: further requests were pipelined behind it, so bytes past this answer are
        theirs (without it they mean the framing is off).

        Raises ``http.client.RemoteDisconnected`` when the server closed the connection
        before answering (a reused connection it had dropped), other ``OSError`` or
        ``http.client.HTTPException`` for failures and malformed answers.
        """
        self.flush()
        while True:
            version, status, headers = self._read_head()
            if not 100 <= status < 200:
                break  # interim answers (100 Continue) carry no body: skip them
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep = "close" not in connection
        else:
            keep = "keep-alive" in connection or "keep-alive" in headers
        length = _content_length(headers.get("content-length"))
        if status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif length is not None:
            body = self._read_exactly(length)
        else:
            # No framing: the body ends when the server closes.
            body, keep = self._read_to_close(), False
        if self._buffer and not more:
            keep = False  # bytes nobody asked for: the framing is off, don't reuse
        if not keep:
            self.close()
        else:
            self._open_requests -= 1
        return HttpResponse(status, headers, body), keep

    # --- reading ------------------------------------------------------------------------

    def _recv(self) -> bytes:
        sock = self.sock
        if sock is None:
            raise ConnectionResetError("the connection was closed")
        return sock.recv(_RECV_BYTES)

    def _read_head(self) -> tuple[str, int, dict[str, str]]:
        data = self._buffer
        end = data.find(b"\r\n\r\n")
        while end < 0:
            if len(data) > _MAX_HEAD_BYTES:
                raise http.client.LineTooLong("response head")
            chunk = self._recv()
            if not chunk:
                if not data:
                    raise http.client.RemoteDisconnected(
                        "Remote end closed connection without response"
                    )
                raise http.client.IncompleteRead(data)
            data += chunk
            end = data.find(b"\r\n\r\n", max(0, len(data) - len(chunk) - 3))
        if end > _MAX_HEAD_BYTES:
            raise http.client.LineTooLong("response head")
        self._buffer = data[end + 4 :]
        lines = data[:end].decode("latin-1").split("\r\n")
        status_line = lines[0].split(None, 2)
        version = status_line[0] if status_line else ""
        code = status_line[1] if len(status_line) > 1 else ""
        if not (version.startswith("HTTP/1.") and _is_number(code) and len(code) == 3):
            raise http.client.BadStatusLine(f"not an HTTP response: {lines[0][:80]!r}")
        if len(lines) > _MAX_HEADERS + 1:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                continue
            key, value = name.strip().lower(), value.strip()
            if key == "content-length" and headers.get(key, value) != value:
                # Which one frames the body is anyone's guess: refuse, as RFC 9112 asks.
                raise http.client.HTTPException("conflicting Content-Length headers")
            headers[key] = value
        return version, int(code), headers

    def _read_exactly(self, length: int) -> bytes:
        data = self._buffer
        if len(data) >= length:
            self._buffer = data[length:]
            return data[:length]
        body = bytearray(data)
        self._buffer = b""
        while len(body) < length:
            chunk = self._recv()
            if not chunk:
                raise http.client.IncompleteRead(bytes(body), length - len(body))
            body += chunk
        self._buffer = bytes(body[length:])
        del body[length:]
        return bytes(body)

    def _read_line(self) -> bytes:
        data = self._buffer
        while b"\r\n" not in data:
            if len(data) > _MAX_HEAD_BYTES:
                raise http.client.LineTooLong("chunk size")
            chunk = self._recv()
            if not chunk:
                raise http.client.IncompleteRead(data)
            data += chunk
        line, _, self._buffer = data.partition(b"\r\n")
        return line

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise http.client.IncompleteRead(bytes(body)) from None
            if size == 0:
                while self._read_line():
                    pass  # trailers, up to the blank line
                return bytes(body)
            body += self._read_exactly(size)
            if self._read_line():
                raise http.client.IncompleteRead(bytes(body))

    def _read_to_close(self) -> bytes:
        body = bytearray(self._buffer)
        self._buffer = b""
        while chunk := self._recv():
            body += chunk
        return bytes(body)
