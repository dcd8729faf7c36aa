"""Token publishes as plain keep-alive HTTP POSTs: no PubNub client per token, task or stream.

A PubNub client holds one access token, but streams and tasks each have their own. Every
publish here is the request the official client sends with ``use_post=True``
(pubnub-wire.md §2): ``POST /publish/{pub}/{sub}/0/{channel}/0?store=&meta=&uuid=&pnsdk=&auth=``
with the JSON message as the body, sent through the SDK's one
:class:`~blocks_network.transport.base.Transport` (keep-alive connections, built for
publish rates in the thousands per second).

Callers pass the message already serialized (stream frames are built as JSON text once) and
get the raw response back: the stream-setup handshake needs the body of the 403 it expects.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from blocks_network.errors import NetworkError
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.constants import STREAM_PUBLISH_ATTEMPTS, STREAM_PUBLISH_BACKOFF_MS
from blocks_network.transport.base import Request, Transport
from blocks_network.transport.connections import HttpResponse, format_headers, split_origin
from blocks_network.transport.pool import ConnectionPool
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.pubnub_query import PNSDK, encode_params, identity_query
from blocks_network.transport.retry import RetryPolicy

__all__ = [
    "PNSDK",
    "PUBLISH_TIMEOUT_S",
    "RETRYABLE_STATUS",
    "STREAM_PUBLISH",
    "TokenPublisher",
    "encode_meta",
]

#: Publishes are small: fail fast rather than hold a writer for the default 30 s.
PUBLISH_TIMEOUT_S: Final = 10.0
#: Idle connections kept by a publisher's own pool (a stream writes from one thread or few).
_MAX_IDLE: Final = 8
_HEAD: Final = format_headers({"User-Agent": PNSDK, "Content-Type": "application/json"})
_CLOSED: Final = "this publisher was closed; create a new client to publish"
#: Answers worth another try: the server is busy or failing, not refusing.
RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})
#: Stream publishes (setup and frames): the protocol's attempts and fixed back-off.
STREAM_PUBLISH: Final = RetryPolicy(
    attempts=STREAM_PUBLISH_ATTEMPTS,
    schedule=tuple(ms / 1000 for ms in STREAM_PUBLISH_BACKOFF_MS),
)


def _segment(value: str) -> str:
    return quote(value, safe="~")


def encode_meta(meta: Mapping[str, Any]) -> str:
    """Compact JSON of a publish's PubNub meta (encode once, reuse for every publish)."""
    return json.dumps(dict(meta), separators=(",", ":"))


class TokenPublisher:
    """Publishes on one keyset of one realtime origin. Thread-safe; :meth:`close` when done.

    ``transport``: share a client's transport (closed by its owner); by default the
    publisher has its own, which :meth:`close` closes.
    """

    def __init__(
        self, endpoint: RealtimeEndpoint, keyset: Keyset, transport: Transport | None = None
    ) -> None:
        scheme = "https" if endpoint.ssl else "http"
        host, port = split_origin(endpoint.origin, 443 if endpoint.ssl else 80)
        self._origin = (scheme, host, port)
        self._owned = transport is None
        self._transport = transport or Transport(
            ConnectionPool(max_idle=_MAX_IDLE, closed_message=_CLOSED)
        )
        self._prefix = (
            f"/publish/{_segment(keyset.publish_key)}/{_segment(keyset.subscribe_key)}/0/"
        )
        self.keyset = keyset
        self.endpoint = endpoint

    def publish_path(
        self,
        channel: str,
        *,
        user_id: str,
        token: str | None,
        meta_json: str | None = None,
        store: bool = False,
    ) -> str:
        """The request target (path and query) of a publish; build once per stream."""
        params = {"store": "1" if store else "0"}
        if meta_json is not None:
            params["meta"] = meta_json
        query = f"{encode_params(params)}&{identity_query(user_id, token)}"
        return f"{self._prefix}{_segment(channel)}/0?{query}"

    def post(self, path: str, body: bytes, *, timeout: float = PUBLISH_TIMEOUT_S) -> HttpResponse:
        """Send one publish built by :meth:`publish_path`; returns any HTTP status.

        Blocks for one round trip; raises NetworkError when the origin cannot be reached
        (no transient retries here: callers own their retry policy), ClosedError after
        :meth:`close`.
        """
        request = Request("POST", self._origin, path, _HEAD, body, timeout)
        try:
            return self._transport.handle_request(request)
        except (OSError, http.client.HTTPException) as exc:
            if self._transport.pool.closed:
                raise self._transport.pool.closed_error() from exc
            raise NetworkError(
                f"could not publish to {self.endpoint.origin}: {exc or type(exc).__name__}"
            ) from exc

    def post_with_retries(
        self, path: str, body: bytes, *, stop: threading.Event | None = None
    ) -> HttpResponse:
        """:meth:`post`, tried again after network errors and :data:`RETRYABLE_STATUS`
        answers as :data:`STREAM_PUBLISH` says. Returns the last answer; raises the last
        NetworkError when no try was answered, ClosedError when ``stop`` (default: this
        publisher's close) ends a back-off."""
        failures = 0
        while True:
            response: HttpResponse | None = None
            try:
                response = self.post(path, body)
            except NetworkError as exc:
                error = exc
            else:
                if response.status not in RETRYABLE_STATUS:
                    return response
            failures += 1
            if not STREAM_PUBLISH.retry_after(failures, stop or self.closing):
                if response is not None:
                    return response
                raise error

    @property
    def closing(self) -> threading.Event:
        """Set once the publisher's transport is closed; retry back-offs wait on it."""
        return self._transport.pool.closing

    def publish(
        self,
        channel: str,
        body: bytes,
        *,
        user_id: str,
        token: str | None,
        meta_json: str | None = None,
        store: bool = False,
        timeout: float = PUBLISH_TIMEOUT_S,
    ) -> HttpResponse:
        """Build the target and publish ``body`` (JSON text) once; see :meth:`post`."""
        path = self.publish_path(
            channel, user_id=user_id, token=token, meta_json=meta_json, store=store
        )
        return self.post(path, body, timeout=timeout)

    def close(self) -> None:
        """Close the publisher's own transport (publishes in flight are aborted, later ones
        raise ClosedError); a shared transport is left to its owner. Idempotent."""
        if self._owned:
            self._transport.close()
