"""A small keep-alive JSON-over-HTTP client for the Blocks backend and token endpoints.

Requests go through the SDK's one :class:`~blocks_network.transport.base.Transport` (its
pool of persistent connections): one request on loopback costs about a tenth of a
millisecond of CPU, a third of what ``http.client`` costs and a fraction of a
general-purpose client, and every task makes several (docs/transport.md). On top of it this
adds JSON bodies, the transient-failure retries of :data:`~blocks_network.transport.retry.
TRANSIENT`, and :meth:`HttpClient.start` for requests whose answers are read later, or
pipelined behind each other on one connection.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

from blocks_network.errors import ClosedError, ConfigError, NetworkError
from blocks_network.transport.base import Request, Transport
from blocks_network.transport.connections import HttpResponse as HttpResponse
from blocks_network.transport.connections import PlainConnection, format_headers
from blocks_network.transport.pool import DEFAULT_MAX_IDLE, ConnectionPool, Origin, origin_key
from blocks_network.transport.retry import TRANSIENT, RetryPolicy, pause

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0
#: Idle keep-alive connections kept per origin (more in flight are opened, then closed).
DEFAULT_POOL_SIZE = DEFAULT_MAX_IDLE


class RequestNotSent(NetworkError):
    """The request never reached the server (no connection): sending it again is safe."""


class AnswerLost(NetworkError):
    """The request was sent but no answer came: whether the server acted on it is unknown."""


class HttpClient:
    """Thread-safe; connections to each origin are pooled and reused.

    ``transport``: share another client's transport (and so its pool); by default the
    client has its own, which :meth:`close` closes.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        user_agent: str = "blocks-network-python",
        pool_size: int = DEFAULT_POOL_SIZE,
        retry: RetryPolicy = TRANSIENT,
        transport: Transport | None = None,
    ) -> None:
        self._timeout = timeout
        self._retry = retry
        self._user_agent = user_agent
        self.transport = transport or Transport(ConnectionPool(timeout=timeout, max_idle=pool_size))
        self._pool = self.transport.pool

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
        request = Request(
            method,
            origin_key(parts.scheme, parts.hostname or "", parts.port),
            path,
            send_headers,
            body,
            timeout,
        )
        failures = 0
        while True:
            try:
                return self.transport.handle_request(request)
            except self._retry.transient as exc:
                failures += 1
                delay = self._retry.delay(failures) if retry_transient else None
                if delay is not None:
                    logger.debug("request to %s failed (%s); retrying in %.2f s", url, exc, delay)
                    pause(delay, self._pool.closing, self._pool.closed_error)
                    continue
                if self._pool.closed:
                    raise self._pool.closed_error() from exc
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
        key = origin_key(parts.scheme, parts.hostname or "", parts.port)
        conn: PlainConnection | None = None
        try:
            # An idle connection the server closed is dropped by checkout: sent on it, the
            # request's fate would be unknown, and this request is never resent blind.
            conn, _ = self._pool.checkout(key, timeout=timeout, probe=True)
            conn.request(method, path, send_headers, body)
        except ClosedError:
            pass  # result() raises it again
        # A ConfigError (untrusted certificate, bad proxy) recurs, and raises, in result().
        except (OSError, http.client.HTTPException, ConfigError) as exc:
            if conn is not None:
                self._pool.discard(conn)
                conn = None
            logger.debug("sending to %s failed (%s)", url, exc)
        return PendingResponse(self, key, conn, (method, url, body, headers, timeout))

    def _prepare(
        self,
        url: str,
        json_body: Any,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[SplitResult, str, bytes | None, str]:
        parts, path, body, send_headers = prepare_request(
            url, json_body, body, headers, self._user_agent
        )
        return parts, path, body, format_headers(send_headers)

    def close(self) -> None:
        """Close the pool: idle connections close, requests in flight are aborted (their
        sockets close, never back into the pool), and every later request raises
        :class:`~blocks_network.errors.ClosedError`. Idempotent."""
        self.transport.close()


class PendingResponse:
    """A request :meth:`HttpClient.start` sent; :meth:`result` reads its answer (once).

    :meth:`pipeline` sends another request on the same connection before this answer is
    read (HTTP/1.1 pipelining); answers are read in request order.
    """

    def __init__(
        self,
        client: HttpClient,
        key: Origin,
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
        key = origin_key(parts.scheme, parts.hostname or "", parts.port)
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
            self._client._pool.discard(conn)
            raise AnswerLost(f"no answer to {what}: {exc or type(exc).__name__}") from exc
        if follower is None:
            self._client._pool.checkin(conn)
            return response
        if not keep or follower._send_failed:
            follower._conn = None  # its answer will not come on this connection
            self._client._pool.discard(conn)
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


def prepare_request(
    url: str,
    json_body: Any,
    body: bytes | None,
    headers: Mapping[str, str] | None,
    user_agent: str,
) -> tuple[SplitResult, str, bytes | None, dict[str, str]]:
    """Check ``url`` and build what every SDK request sends, sync or async: the URL's
    parts, the request target, the body (``json_body`` serialised compactly) and headers."""
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
        "User-Agent": user_agent,
        "Accept": "application/json",
        "Accept-Encoding": "identity",
    }
    if json_body is not None:
        body = json.dumps(json_body, separators=(",", ":")).encode()
        send_headers["Content-Type"] = "application/json"
    if headers:
        send_headers.update(headers)
    return parts, path, body, send_headers
