"""How one process reaches stream channels: origin, keyset, poll loops, client ids.

The agent runtime and the consumer session each build one :class:`StreamLink`; stream readers
get their subscriptions and writers their publisher from it.
"""

from __future__ import annotations

import itertools
import threading
from typing import Final

from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.ids import stream_client_id
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.publisher import TokenPublisher
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import (
    ChannelSubscription,
    PollConnections,
    SubscriptionSink,
)

__all__ = ["StreamLink", "next_stream_client_id"]

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_THREAD_NAME: Final = "blocks-stream-poll"


def next_stream_client_id(prefix: str) -> str:
    """``{prefix}-stream-{NNNN}`` with a per-process counter (protocol §2)."""
    with _counter_lock:
        n = next(_counter)
    return stream_client_id(prefix, n % 10_000)


class StreamLink:
    """Where stream channels live for this process, and who it is there. Thread-safe.

    ``client_prefix`` is the agent name (agent side) or the consumer's user id. ``polls`` are
    the threads and connections readers' subscribe loops borrow, owned by the caller (the
    consumer shares its sessions'); without them the link makes its own on first use. The
    link owns its publisher's connections (and its own polls): :meth:`close` them when done.
    """

    def __init__(
        self,
        endpoint: RealtimeEndpoint,
        keyset: Keyset,
        client_prefix: str,
        polls: tuple[PollThreads, PollConnections] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.keyset = keyset
        self.client_prefix = client_prefix
        self._lock = threading.Lock()
        self._publisher: TokenPublisher | None = None
        self._polls = polls
        self._owns_polls = polls is None

    def publisher(self) -> TokenPublisher:
        """The publisher for this link's keyset (one per link, created on first use)."""
        with self._lock:
            if self._publisher is None:
                self._publisher = TokenPublisher(self.endpoint, self.keyset)
            return self._publisher

    def new_client_id(self) -> str:
        """A fresh stream client user id for this process."""
        return next_stream_client_id(self.client_prefix)

    def subscription(
        self,
        *,
        channel: str,
        user_id: str,
        token: str,
        cursor: int,
        sink: SubscriptionSink,
        filter_expr: str | None = None,
    ) -> ChannelSubscription:
        """A subscribe loop on ``channel`` after timetoken ``cursor``, not started yet (the
        caller ``start()``s and ``stop()``s it). Streams send no presence heartbeat."""
        with self._lock:
            if self._polls is None:
                self._polls = (
                    PollThreads(thread_name=_THREAD_NAME),
                    PollConnections(self.endpoint),
                )
            threads, connections = self._polls
        return ChannelSubscription(
            endpoint=self.endpoint,
            subscribe_key=self.keyset.subscribe_key,
            channel=channel,
            token=token,
            user_id=user_id,
            cursor=cursor,
            sink=sink,
            threads=threads,
            connections=connections,
            filter_expr=filter_expr,
        )

    def close(self) -> None:
        """Close the publisher's idle connections and the link's own poll threads (a link
        closed this way still works: it makes new ones). Idempotent."""
        with self._lock:
            publisher = self._publisher
            polls = self._polls if self._owns_polls else None
            if polls is not None:
                self._polls = None
        if publisher is not None:
            publisher.close()
        if polls is not None:
            threads, connections = polls
            connections.close()  # first: aborts the polls the threads would be joined in
            threads.close()
