"""A minimal keep-alive HTTP/1.1 POST client for high-rate publishes.

Stream frames are published one request each, hundreds to thousands per second. ``http.client``
spends about 0.4 ms of CPU per request building headers and parsing the response through the
``email`` package; this client writes one preformatted request and parses only the status
line, ``Content-Length``, ``Transfer-Encoding`` and ``Connection``, for about a tenth of that.
It speaks plain HTTP/1.1 (TLS when the origin needs it) and is used only for publishes.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import Final

from blocks_network.errors import NetworkError
from blocks_network.transport.http_client import HttpResponse

__all__ = ["PostPool"]

_MAX_IDLE: Final = 8
_MAX_HEADER_BYTES: Final = 64 * 1024
_RECV: Final = 65536


def _split_origin(origin: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port)."""
    if origin.startswith("["):
        host, _, tail = origin[1:].partition("]")
        return host, int(tail[1:]) if tail.startswith(":") else default_port
    host, sep, port = origin.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return origin, default_port


class _Conn:
    __slots__ = ("buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class PostPool:
    """Pooled keep-alive connections to one origin (``host[:port]``). Thread-safe.

    Each request uses one connection exclusively; idle ones are reused (at most 8 kept).
    """

    def __init__(self, origin: str, *, tls: bool, user_agent: str) -> None:
        self._host, self._port = _split_origin(origin, 443 if tls else 80)
        self._host_header = origin
        self._tls = tls
        self._ssl: ssl.SSLContext | None = None
        self._head = (
            f"Host: {origin}\r\nUser-Agent: {user_agent}\r\nContent-Type: application/json\r\n"
        )
        self._lock = threading.Lock()
        self._idle: list[_Conn] = []
        self._closed = False

    def post(self, path: str, body: bytes, timeout: float) -> HttpResponse:
        """POST ``body`` to ``path`` (with query); returns any status.

        Raises NetworkError when the origin cannot be reached or the answer is not HTTP. A
        reused connection the server closed meanwhile is retried once on a new one.
        """
        request = (
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n".encode(
                "latin-1"
            )
            + body
        )
        for attempt in (0, 1):
            try:
                conn, reused = self._checkout(timeout)
            except OSError as exc:
                raise NetworkError(f"could not publish to {self._host_header}: {exc}") from exc
            try:
                conn.sock.settimeout(timeout)
                conn.sock.sendall(request)
                response, keep = self._read_response(conn)
            except (OSError, ValueError) as exc:
                conn.close()
                if reused and attempt == 0 and not isinstance(exc, TimeoutError):
                    continue
                raise NetworkError(
                    f"could not publish to {self._host_header}: {exc or type(exc).__name__}"
                ) from exc
            if keep:
                self._checkin(conn)
            else:
                conn.close()
            return response
        raise NetworkError(f"could not publish to {self._host_header}")  # pragma: no cover

    def close(self) -> None:
        """Close idle connections; later posts open new ones. Idempotent."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- connections --------------------------------------------------------------------

    def _checkout(self, timeout: float) -> tuple[_Conn, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        sock = socket.create_connection((self._host, self._port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            sock = self._ssl.wrap_socket(sock, server_hostname=self._host)
        return _Conn(sock), False

    def _checkin(self, conn: _Conn) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    # --- responses ----------------------------------------------------------------------

    def _read_response(self, conn: _Conn) -> tuple[HttpResponse, bool]:
        data = conn.buffer
        while b"\r\n\r\n" not in data:
            if len(data) > _MAX_HEADER_BYTES:
                raise ValueError("response headers too large")
            chunk = conn.sock.recv(_RECV)
            if not chunk:
                raise ConnectionResetError("connection closed before the response")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, rest = self._read_chunked(conn, rest)
        else:
            length = int(headers.get("content-length", "0"))
            while len(rest) < length:
                chunk = conn.sock.recv(_RECV)
                if not chunk:
                    raise ConnectionResetError("connection closed in the response body")
                rest += chunk
            body, rest = rest[:length], rest[length:]
        conn.buffer = rest
        keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        return HttpResponse(status, headers, body), keep

    @staticmethod
    def _read_chunked(conn: _Conn, data: bytes) -> tuple[bytes, bytes]:
        body = b""
        while True:
            while b"\r\n" not in data:
                chunk = conn.sock.recv(_RECV)
                if not chunk:
                    raise ConnectionResetError("connection closed in a chunked body")
                data += chunk
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                chunk = conn.sock.recv(_RECV)
                if not chunk:
                    raise ConnectionResetError("connection closed in a chunked body")
                data += chunk
            if size == 0:
                # Trailers are not used by publish answers; skip the final CRLF.
                return body, data[2:]
            body += data[:size]
            data = data[size + 2 :]
