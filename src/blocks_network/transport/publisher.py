"""Token publishes as plain keep-alive HTTP POSTs: no PubNub client per token, task or stream.

A PubNub client holds one access token, but streams and tasks each have their own. Every
publish here is the request the official client sends with ``use_post=True``
(pubnub-wire.md §2): ``POST /publish/{pub}/{sub}/0/{channel}/0?store=&meta=&uuid=&pnsdk=&auth=``
with the JSON message as the body, over a small pool of keep-alive connections
(:class:`~blocks_network.transport.post_pool.PostPool`, built for publish rates in the
thousands per second).

Callers pass the message already serialized (stream frames are built as JSON text once) and
get the raw response back: the stream-setup handshake needs the body of the 403 it expects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.http_client import HttpResponse
from blocks_network.transport.post_pool import PostPool
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.pubnub_query import PNSDK, encode_params, identity_query

__all__ = ["PNSDK", "PUBLISH_TIMEOUT_S", "TokenPublisher", "encode_meta"]

#: Publishes are small: fail fast rather than hold a writer for the default 30 s.
PUBLISH_TIMEOUT_S: Final = 10.0


def _segment(value: str) -> str:
    return quote(value, safe="~")


def encode_meta(meta: Mapping[str, Any]) -> str:
    """Compact JSON of a publish's PubNub meta (encode once, reuse for every publish)."""
    return json.dumps(dict(meta), separators=(",", ":"))


class TokenPublisher:
    """Publishes on one keyset of one realtime origin. Thread-safe; :meth:`close` when done."""

    def __init__(self, endpoint: RealtimeEndpoint, keyset: Keyset) -> None:
        self._pool = PostPool(endpoint.origin, tls=endpoint.ssl, user_agent=PNSDK)
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
        (no transient retries here: callers own their retry policy).
        """
        return self._pool.post(path, body, timeout)

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
        """Close idle connections (later publishes reconnect). Idempotent."""
        self._pool.close()
