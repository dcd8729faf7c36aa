"""Pooled keep-alive connections for high-rate publishes.

Stream frames are published one request each, hundreds to thousands per second; each goes
out as one preformatted POST over a :class:`~blocks_network.transport.connections.
PlainConnection` taken from a small pool of idle ones.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from typing import Final

from blocks_network.errors import ClosedError, NetworkError
from blocks_network.transport.connections import (
    HttpResponse,
    PlainConnection,
    format_headers,
    split_origin,
)
from blocks_network.transport.tls import client_ssl_context

__all__ = ["PostPool"]

_MAX_IDLE: Final = 8


class PostPool:
    """Pooled keep-alive connections to one origin (``host[:port]``). Thread-safe.

    Each request uses one connection exclusively; idle ones are reused (at most 8 kept).
    """

    def __init__(self, origin: str, *, tls: bool, user_agent: str) -> None:
        self._host, self._port = split_origin(origin, 443 if tls else 80)
        self._origin = origin
        self._tls = tls
        self._ssl: ssl.SSLContext | None = None
        self._head = format_headers({"User-Agent": user_agent, "Content-Type": "application/json"})
        self._lock = threading.Lock()
        self._idle: list[PlainConnection] = []
        self._closed = False

    def post(self, path: str, body: bytes, timeout: float) -> HttpResponse:
        """POST ``body`` to ``path`` (with query); returns any status.

        Raises NetworkError when the origin cannot be reached or the answer is not HTTP. A
        reused connection the server closed meanwhile is retried once on a new one.
        """
        for attempt in (0, 1):
            conn, reused = self._checkout(timeout)
            try:
                conn.request("POST", path, self._head, body)
                response, keep = conn.read_response()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused and attempt == 0 and not isinstance(exc, TimeoutError):
                    continue
                raise NetworkError(
                    f"could not publish to {self._origin}: {exc or type(exc).__name__}"
                ) from exc
            if keep:
                self._checkin(conn)
            return response
        raise NetworkError(f"could not publish to {self._origin}")  # pragma: no cover

    def close(self) -> None:
        """Close idle connections; a post in flight closes its connection when it ends,
        later posts raise ClosedError. Idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- connections --------------------------------------------------------------------

    def _checkout(self, timeout: float) -> tuple[PlainConnection, bool]:
        with self._lock:
            if self._closed:
                raise ClosedError("this publisher was closed; create a new client to publish")
            if self._idle:
                conn = self._idle.pop()
                conn.set_timeout(timeout)
                return conn, True
            if self._tls and self._ssl is None:
                self._ssl = client_ssl_context()
        return PlainConnection(self._host, self._port, timeout=timeout, tls=self._ssl), False

    def _checkin(self, conn: PlainConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()
