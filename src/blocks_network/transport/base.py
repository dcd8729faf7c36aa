"""The SDK's one transport: :meth:`Transport.handle_request` turns a :class:`Request` into a
:class:`~blocks_network.transport.connections.HttpResponse` (httpx's ``BaseTransport``
is the model).

Everything the SDK sends goes through it, over connections from one
:class:`~blocks_network.transport.pool.ConnectionPool`: the backend and token endpoints
(:class:`~blocks_network.transport.http_client.HttpClient`), publishes
(:class:`~blocks_network.transport.publisher.TokenPublisher`), the official client's
requests and long-polls (:mod:`~blocks_network.transport.pubnub_http`) and the sessions'
subscribe loops (:mod:`~blocks_network.transport.subscription`). It sends one request and
reads one answer; the only retry here is the one every keep-alive client makes, once on a
new connection when a *reused* one turns out to have been closed by the server. Retries
with back-off are the callers' (``retry.py``); errors are those of ``http.client``
(``OSError``, ``http.client.HTTPException``) plus :class:`~blocks_network.errors.
CertificateError`, :class:`~blocks_network.errors.ProxyError` and, after ``close()`` or an
:class:`Abort`, :class:`~blocks_network.errors.ClosedError`.
"""

from __future__ import annotations

import http.client
import threading
from typing import NamedTuple

from blocks_network.errors import ClosedError
from blocks_network.transport.connections import HttpResponse, PlainConnection
from blocks_network.transport.pool import ConnectionPool, Origin, abort

__all__ = ["Abort", "Request", "Transport"]

#: What a reused connection the server closed while it sat idle fails with.
_STALE: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
)


class Request(NamedTuple):
    """One HTTP/1.1 request: ``target`` is the path and query; ``head`` the header lines
    (``format_headers``; ``Host`` and ``Content-Length`` are added); ``timeout`` the
    connect/read timeout in seconds (None: the pool's); ``abort`` lets another thread end
    it. (A tuple: built on every request, it costs a fraction of a dataclass.)"""

    method: str
    origin: Origin
    target: str
    head: str = ""
    body: bytes | None = None
    timeout: float | None = None
    abort: Abort | None = None


class Abort:
    """Lets another thread end a request in flight (a long-poll, say): :meth:`abort` wakes
    the blocked read, and the request raises."""

    __slots__ = ("_conn", "_lock", "aborted")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: PlainConnection | None = None
        self.aborted = False

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            conn = self._conn
        if conn is not None:
            abort(conn)

    def _attach(self, conn: PlainConnection | None) -> bool:
        """Follow ``conn`` (None: stop following); False when already aborted."""
        with self._lock:
            self._conn = conn
            return not self.aborted


class Transport:
    """Sends requests over pooled connections. Thread-safe."""

    def __init__(self, pool: ConnectionPool | None = None) -> None:
        self.pool = pool if pool is not None else ConnectionPool()

    def handle_request(self, request: Request) -> HttpResponse:
        """Send ``request`` and read its answer (any status)."""
        pool = self.pool
        for fresh in (False, True):
            conn, reused = pool.checkout(request.origin, fresh=fresh, timeout=request.timeout)
            cancel = request.abort
            try:
                if cancel is not None:
                    if not cancel._attach(conn):
                        raise ClosedError("the request was aborted before it was sent")
                    if conn.sock is None:
                        conn.connect()
                        if cancel.aborted:  # while connecting: nothing was there to abort
                            raise ClosedError("the request was aborted before it was sent")
                conn.request(request.method, request.target, request.head, request.body)
                response, _ = conn.read_response()
            except _STALE:
                pool.discard(conn)
                if not reused or pool.closed or (cancel is not None and cancel.aborted):
                    raise
                continue
            except BaseException:
                pool.discard(conn)
                raise
            finally:
                if cancel is not None:
                    cancel._attach(None)
            if cancel is not None and cancel.aborted:
                pool.discard(conn)  # the abort may have shut its socket down: not reusable
            else:
                pool.checkin(conn)
            return response
        raise http.client.HTTPException("unreachable")  # pragma: no cover

    def open_ahead(self, origin: Origin) -> None:
        """Open a connection to ``origin`` for a request to come, unless one is idle (so a
        client built in advance connects off the caller's critical path)."""
        if self.pool.idle_count(origin):
            return
        conn, _ = self.pool.checkout(origin, fresh=True)
        try:
            conn.connect()
        except BaseException:
            self.pool.discard(conn)
            raise
        self.pool.checkin(conn)

    def close(self) -> None:
        """Close the pool (idle connections close, requests in flight are aborted)."""
        self.pool.close()
