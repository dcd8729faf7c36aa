"""How one process reaches stream channels: origin, keyset, connection pool, client ids.

The agent runtime and the consumer session each build one :class:`StreamLink`; stream readers
and writers get their publisher and subscribe clients from it.
"""

from __future__ import annotations

import itertools
import threading

from pubnub.pubnub import PubNub

from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.ids import stream_client_id
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.publisher import TokenPublisher
from blocks_network.transport.pubnub_factory import RealtimeEndpoint, create_pubnub
from blocks_network.transport.pubnub_http import use_pooled_requests

__all__ = ["StreamLink", "next_stream_client_id"]

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def next_stream_client_id(prefix: str) -> str:
    """``{prefix}-stream-{NNNN}`` with a per-process counter (protocol §2)."""
    with _counter_lock:
        n = next(_counter)
    return stream_client_id(prefix, n % 10_000)


class StreamLink:
    """Where stream channels live for this process, and who it is there. Thread-safe.

    ``client_prefix`` is the agent name (agent side) or the consumer's user id. ``http`` is a
    shared pool owned by the caller (subscribe clients use it); the link owns its publisher's
    connections: :meth:`close` them when done.
    """

    def __init__(
        self, http: HttpClient, endpoint: RealtimeEndpoint, keyset: Keyset, client_prefix: str
    ) -> None:
        self.http = http
        self.endpoint = endpoint
        self.keyset = keyset
        self.client_prefix = client_prefix
        self._lock = threading.Lock()
        self._publisher: TokenPublisher | None = None

    def publisher(self) -> TokenPublisher:
        """The publisher for this link's keyset (one per link, created on first use)."""
        with self._lock:
            if self._publisher is None:
                self._publisher = TokenPublisher(self.endpoint, self.keyset)
            return self._publisher

    def new_client_id(self) -> str:
        """A fresh stream client user id for this process."""
        return next_stream_client_id(self.client_prefix)

    def subscriber(self, *, user_id: str, token: str, filter_expression: str | None) -> PubNub:
        """A PubNub client for reading one stream (the caller ``stop()``s it)."""
        client = create_pubnub(
            subscribe_key=self.keyset.subscribe_key,
            publish_key=self.keyset.publish_key,
            user_id=user_id,
            endpoint=self.endpoint,
            token=token,
            filter_expression=filter_expression,
        )
        # Streams do not use presence: no leave call when a reader stops.
        client.config.suppress_leave_events = True
        return use_pooled_requests(client, self.http)

    def close(self) -> None:
        """Close the publisher's idle connections (the link stays usable). Idempotent."""
        with self._lock:
            publisher = self._publisher
        if publisher is not None:
            publisher.close()
