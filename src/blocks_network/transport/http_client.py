"""A small keep-alive JSON-over-HTTP client for the Blocks backend and token endpoints.

A pool of persistent :class:`~blocks_network.transport.connections.PlainConnection` s:
one request on loopback costs about a tenth of a millisecond of CPU, a third of what
``http.client`` costs and a fraction of a general-purpose client, and every task makes
several.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

from blocks_network.errors import ClosedError, ConfigError, NetworkError
from blocks_network.transport.connections import HttpResponse as HttpResponse
from blocks_network.transport.connections import PlainConnection, format_headers
from blocks_network.transport.retry import TRANSIENT, RetryPolicy, wait
from blocks_network.transport.tls import client_ssl_context

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0
#: Idle keep-alive connections kept per origin (more in flight are opened, then closed).
DEFAULT_POOL_SIZE = 64
_CLOSED = "this SDK client was closed; its requests stop here (create a new client)"


class RequestNotSent(NetworkError):
    """The request never reached the server (no connection): sending it again is safe."""


class AnswerLost(NetworkError):
    """The request was sent but no answer came: whether the server acted on it is unknown."""


class HttpClient:
    """Thread-safe; connections to each origin are pooled and reused."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        user_agent: str = "blocks-network-python",
        pool_size: int = DEFAULT_POOL_SIZE,
        retry: RetryPolicy = TRANSIENT,
    ) -> None:
        self._timeout = timeout
        self._retry = retry
        # Set by close(): ends a retry back-off at once.
        self._stopping = threading.Event()
        self._pool_size = pool_size
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[PlainConnection]] = {}
        self._ssl_context: ssl.SSLContext | None = None
        # Connections checked out (requests in flight), so close() can abort them.
        self._busy: set[PlainConnection] = set()
        self._closed = False

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        retry_transient: bool = True,
    ) -> HttpResponse:
        """Send one request; network failures raise :class:`NetworkError` after retries.

        Any HTTP status is returned, not raised: callers map statuses to their errors.
        Raises :class:`~blocks_network.errors.ClosedError` once :meth:`close` was called,
        also during a retry's back-off.
        """
        parts, path, body, send_headers = self._prepare(url, json_body, body, headers)
        failures = 0
        while True:
            try:
                return self._send(
                    parts.scheme,
                    parts.hostname or "",
                    parts.port,
                    method,
                    path,
                    body,
                    send_headers,
                    timeout,
                )
            except self._retry.transient as exc:
                failures += 1
                delay = self._retry.delay(failures) if retry_transient else None
                if delay is not None:
                    logger.debug("request to %s failed (%s); retrying in %.2f s", url, exc, delay)
                    if wait(delay, self._stopping):
                        continue
                if self._stopping.is_set():
                    raise ClosedError(_CLOSED) from exc
                raise NetworkError(
                    f"could not reach {parts.scheme}://{parts.netloc}: {exc}"
                ) from exc

    def start(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> PendingResponse:
        """Send one request now and read its answer later with :meth:`PendingResponse.result`.

        The caller can do other work (another request on another connection, say) while
        the server answers. The connection stays with the pending response until its
        result is read, so every started request must be read. Never raises: a failure to
        send is retried, as :meth:`request` would, when the result is asked for.
        """
        parts, path, body, send_headers = self._prepare(url, None, body, headers)
        key = _origin_key(parts.scheme, parts.hostname or "", parts.port)
        conn: PlainConnection | None = None
        for fresh in (False, True):
            try:
                conn = self._connection(key, fresh, timeout)
            except ClosedError:
                break  # result() raises it again
            if not fresh and _dropped(conn):
                # Closed by the server while idle: sent on it, the request's fate would be
                # unknown, and this is the one request that is never resent blind.
                self._drop(conn)
                continue
            try:
                conn.request(method, path, send_headers, body)
                break
            # A ConfigError (untrusted certificate, bad proxy) recurs, and raises, in result().
            except (OSError, http.client.HTTPException, ConfigError) as exc:
                self._drop(conn)
                conn = None
                logger.debug("sending to %s failed (%s)", url, exc)
        return PendingResponse(self, key, conn, (method, url, body, headers, timeout))

    def _connection(
        self, key: tuple[str, str, int], fresh: bool, timeout: float | None
    ) -> PlainConnection:
        """A pooled (or, with ``fresh``, a new) connection set to ``timeout``."""
        conn = self._checkout(key, fresh)
        conn.set_timeout(timeout or self._timeout)
        return conn

    def _prepare(
        self,
        url: str,
        json_body: Any,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[SplitResult, str, bytes | None, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NetworkError(f"invalid URL {url!r}: expected http(s)://host[:port]/path")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if not path.isascii() or not path.isprintable() or " " in path:
            # Not worth a retry: the same URL fails the same way.
            raise NetworkError(f"invalid URL {url!r}: percent-encode spaces and non-ASCII text")
        send_headers = {
            "User-Agent": self._user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            send_headers["Content-Type"] = "application/json"
        if headers:
            send_headers.update(headers)
        return parts, path, body, format_headers(send_headers)

    def _send(
        self,
        scheme: str,
        host: str,
        port: int | None,
        method: str,
        path: str,
        body: bytes | None,
        headers: str,
        timeout: float | None,
    ) -> HttpResponse:
        key = _origin_key(scheme, host, port)
        # A pooled connection may have been closed by the server: retry once on a fresh one.
        for fresh in (False, True):
            conn = self._connection(key, fresh, timeout)
            try:
                conn.request(method, path, headers, body)
                response, keep = conn.read_response()
            except (
                ConnectionResetError,
                BrokenPipeError,
                http.client.RemoteDisconnected,
                http.client.BadStatusLine,
            ):
                self._drop(conn)
                if fresh:
                    raise
                continue
            except BaseException:
                self._drop(conn)
                raise
            return self._finish(key, conn, response, keep)
        raise http.client.HTTPException("unreachable")  # pragma: no cover

    def _finish(
        self, key: tuple[str, str, int], conn: PlainConnection, response: HttpResponse, keep: bool
    ) -> HttpResponse:
        if keep:
            self._checkin(key, conn)
        else:
            self._drop(conn)
        return response

    def _checkout(self, key: tuple[str, str, int], fresh: bool) -> PlainConnection:
        """A pooled or new connection, marked busy; raises ClosedError after close()."""
        scheme, host, port = key
        with self._lock:
            if self._closed:
                raise ClosedError(_CLOSED)
            idle = None if fresh else self._idle.get(key)
            if idle:
                conn = idle.pop()
            else:
                if scheme == "https" and self._ssl_context is None:
                    self._ssl_context = client_ssl_context()
                conn = PlainConnection(
                    host,
                    port,
                    timeout=self._timeout,
                    tls=self._ssl_context if scheme == "https" else None,
                )
            self._busy.add(conn)
        return conn

    def _checkin(self, key: tuple[str, str, int], conn: PlainConnection) -> None:
        """Return a busy connection to the pool (closed if the pool is closed or full)."""
        with self._lock:
            self._busy.discard(conn)
            idle = self._idle.setdefault(key, [])
            if not self._closed and len(idle) < self._pool_size:
                idle.append(conn)
                return
        conn.close()

    def _drop(self, conn: PlainConnection) -> None:
        """Close a busy connection (failed, or not reusable)."""
        with self._lock:
            self._busy.discard(conn)
        conn.close()

    def close(self) -> None:
        """Close the pool: idle connections close, requests in flight are aborted (their
        sockets close, never back into the pool), and every later request raises
        :class:`~blocks_network.errors.ClosedError`. Idempotent."""
        self._stopping.set()
        with self._lock:
            self._closed = True
            pools, self._idle = self._idle, {}
            busy = list(self._busy)
        for idle in pools.values():
            for conn in idle:
                conn.close()
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                # shutdown() wakes the thread blocked in recv(), which then closes the
                # socket itself; closing it from here could close a reused descriptor.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _dropped(conn: PlainConnection) -> bool:
    """Whether an idle pooled connection was closed (or spoken on) by the server: an idle
    keep-alive connection has nothing to read."""
    sock = conn.sock
    if sock is None or isinstance(sock, ssl.SSLSocket):
        # TLS may leave records (session tickets) unread on a healthy connection; a publish
        # lost on a dropped one is found by the outbox's history check instead.
        return False
    # poll(), not recv(MSG_PEEK): a socket with a timeout waits in recv() whatever the flags.
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _origin_key(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return (scheme, host, port or (443 if scheme == "https" else 80))


class PendingResponse:
    """A request :meth:`HttpClient.start` sent; :meth:`result` reads its answer (once).

    :meth:`pipeline` sends another request on the same connection before this answer is
    read (HTTP/1.1 pipelining); answers are read in request order.
    """

    def __init__(
        self,
        client: HttpClient,
        key: tuple[str, str, int],
        conn: PlainConnection | None,
        request: tuple[str, str, bytes | None, Mapping[str, str] | None, float | None],
        leader: PendingResponse | None = None,
    ) -> None:
        self._client = client
        self._key = key
        self._conn = conn
        self._request = request
        self._result: HttpResponse | None = None
        self._error: NetworkError | None = None
        # Pipelining: the request sent before this one on its connection (its answer comes
        # first, and hands the connection over), and the one sent after it.
        self._leader = leader
        self._follower: PendingResponse | None = None
        self._send_failed = False

    def pipeline(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        defer: bool = False,
    ) -> PendingResponse | None:
        """Send a request to the same origin on this request's connection now, before its
        answer is read; None (nothing sent) when the connection cannot take it (not sent,
        already answered, another request already behind it, another origin). ``defer``:
        write it together with the next request on the connection (or before its next
        read) instead of now.

        The follower's :meth:`result_once` reads this answer first. If the connection
        breaks, every unanswered request on it raises :class:`AnswerLost`.
        """
        conn = self._conn
        if conn is None or self._follower is not None or self._send_failed:
            return None
        parts, path, body, send_headers = self._client._prepare(url, None, body, headers)
        key = _origin_key(parts.scheme, parts.hostname or "", parts.port)
        if key != self._key:
            return None
        # It shares the connection, and reads from it once this answer is read.
        follower = PendingResponse(
            self._client, key, conn, (method, url, body, headers, timeout), leader=self
        )
        self._follower = follower
        try:
            conn.request(method, path, send_headers, body, defer=defer)
        except (OSError, http.client.HTTPException, ConfigError) as exc:
            # Maybe sent in part: the connection carries nothing more once this answer is in.
            follower._send_failed = True
            logger.debug("pipelining to %s failed (%s)", url, exc)
        return follower

    def result_once(self) -> HttpResponse:
        """The response to the one request sent, never resending it (for requests that are
        not idempotent, e.g. publishes). Raises :class:`RequestNotSent` when it could not be
        sent and :class:`AnswerLost` when its answer did not come."""
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        try:
            self._result = self._read()
        except NetworkError as exc:
            self._error = exc
            raise
        return self._result

    def _read(self) -> HttpResponse:
        leader, self._leader = self._leader, None
        if leader is not None:
            # Its answer comes first; reading it hands us the connection if it stays usable.
            with contextlib.suppress(NetworkError):
                leader.result_once()
        conn, self._conn = self._conn, None
        method, url = self._request[0], self._request[1]
        what = f"{method} {url.split('?', 1)[0]}"
        if conn is None:
            if leader is not None:
                raise AnswerLost(f"no answer to {what}: the connection was lost before it")
            raise RequestNotSent(f"could not send {what}")
        follower, self._follower = self._follower, None
        try:
            response, keep = conn.read_response(more=follower is not None)
        except (OSError, http.client.HTTPException) as exc:
            if follower is not None:
                follower._conn = None  # its answer will not come on this connection
            self._client._drop(conn)
            raise AnswerLost(f"no answer to {what}: {exc or type(exc).__name__}") from exc
        if follower is None:
            return self._client._finish(self._key, conn, response, keep)
        if not keep or follower._send_failed:
            follower._conn = None  # its answer will not come on this connection
            self._client._drop(conn)
        return response

    def result(self) -> HttpResponse:
        """The response; raises :class:`NetworkError` as :meth:`HttpClient.request` does.

        When the started request failed (not sent, or its connection was lost before the
        answer), it is sent again through :meth:`HttpClient.request` with its retries.
        """
        try:
            return self.result_once()
        except NetworkError as exc:
            logger.debug("a started request failed (%s); resending", exc)
        method, url, body, headers, timeout = self._request
        self._result = self._client.request(
            method, url, body=body, headers=headers, timeout=timeout
        )
        return self._result
