"""The realtime side of one TaskClient: sessions' subscriptions, PubNub clients, server clock.

Sessions whose read tokens read each other's channels share one multi-channel long-poll
over one keep-alive connection (:mod:`.poll_groups`; a token that reads only its own task
channel polls alone); the polls waiting for the server all sit in one selector thread
(:mod:`.poll_loop`), and an answer borrows a pool thread only while it is read and
delivered to the sessions it names. An official
PubNub client (sharing the TaskClient's HTTP pool) is built only for the rarer requests a
session may make: history catch-up and file downloads.

Why a server clock estimate: a new task's channel is empty before SendMessage, so
subscribing from a timetoken taken *before* the call replays every event of the task from
the server's cache. One ``/time/0`` request per TaskClient calibrates the offset.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from pubnub.pubnub import PubNub

from blocks_network.errors import BlocksError
from blocks_network.protocol.constants import STREAM_REPLAY_TIMETOKEN
from blocks_network.protocol.ids import new_session_client_id
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.poll_groups import PollGroups
from blocks_network.transport.poll_loop import PollLoop, SubscriptionMember
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import RealtimeEndpoint, create_pubnub
from blocks_network.transport.pubnub_http import use_pooled_requests
from blocks_network.transport.subscription import PollConnections, SubscriptionSink

__all__ = ["SessionRealtime"]

logger = logging.getLogger(__name__)

_TICKS_PER_SECOND: Final = 10_000_000
#: How far before "now" a fresh task's subscription starts (covers clock drift).
CURSOR_MARGIN_S: Final = 2.0
_TIME_TIMEOUT_S: Final = 5.0


class _ServerClock:
    """``server timetoken ≈ local time + offset``; calibrated once, lazily; thread-safe."""

    def __init__(self, endpoint: RealtimeEndpoint, http: HttpClient) -> None:
        scheme = "https" if endpoint.ssl else "http"
        self._url = f"{scheme}://{endpoint.origin}/time/0"
        self._http = http
        self._lock = threading.Lock()
        self._offset: int | None = None

    @property
    def calibrated(self) -> bool:
        """Whether :meth:`now` answers without a request."""
        with self._lock:
            return self._offset is not None

    def now(self) -> int | None:
        with self._lock:
            if self._offset is None:
                self._offset = self._calibrate()
            offset = self._offset
        return None if offset is None else int(time.time() * _TICKS_PER_SECOND) + offset

    def _calibrate(self) -> int | None:
        before = time.time()
        try:
            response = self._http.request(
                "GET", self._url, timeout=_TIME_TIMEOUT_S, retry_transient=False
            )
            body = response.json()
            server = int(body[0])
        except (BlocksError, TypeError, ValueError, IndexError, KeyError) as exc:
            logger.warning("could not read the realtime server's clock (%s); replaying cache", exc)
            return None
        local = (before + time.time()) / 2
        return server - int(local * _TICKS_PER_SECOND)


class SessionRealtime:
    """Builds the PubNub clients of one keyset for a TaskClient's sessions; thread-safe.

    :meth:`close` releases the client kept ready for the next session.
    """

    def __init__(
        self,
        endpoint: RealtimeEndpoint,
        subscribe_key: str,
        publish_key: str | None,
        http: HttpClient,
        clock: _ServerClock | None = None,
        polls: tuple[PollThreads, PollConnections] | None = None,
        loop: PollLoop | None = None,
        groups: PollGroups | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.subscribe_key = subscribe_key
        self.publish_key = publish_key
        self._http = http
        self._clock = clock or _ServerClock(endpoint, http)
        # One PubNub user id for all of this client's sessions: the server tracks a known
        # uuid's presence more cheaply (~0.4 ms per subscribe) than a new one's.
        self._user_id = new_session_client_id()
        self._polls = polls or (PollThreads(), PollConnections(endpoint))
        self._loop = loop or PollLoop()
        self._groups = groups or PollGroups(endpoint, self._user_id, self._loop, self._polls[1])

    @property
    def http(self) -> HttpClient:
        """The shared keep-alive pool."""
        return self._http

    @property
    def user_id(self) -> str:
        """The PubNub user id every request of this client's sessions sends."""
        return self._user_id

    @property
    def polls(self) -> tuple[PollThreads, PollConnections]:
        """The poll threads and connections sessions and their stream readers borrow."""
        return self._polls

    def with_keys(self, subscribe_key: str | None, publish_key: str | None) -> SessionRealtime:
        """The same endpoint and pool on another keyset (a SendMessage result may name one).

        It shares this context's poll threads and connections, so it needs no :meth:`close`.
        """
        if (subscribe_key or self.subscribe_key) == self.subscribe_key:
            return self
        return SessionRealtime(
            self.endpoint,
            subscribe_key or self.subscribe_key,
            publish_key,
            self._http,
            self._clock,
            self._polls,
            self._loop,
            self._groups,
        )

    def _build(self) -> PubNub:
        pubnub = create_pubnub(
            subscribe_key=self.subscribe_key,
            publish_key=self.publish_key,
            user_id=self._user_id,
            endpoint=self.endpoint,
            # Sessions never need presence: don't send a leave call when they stop.
            suppress_leave_events=True,
        )
        use_pooled_requests(pubnub, self._http)
        return pubnub

    def client(self, token: str | None) -> PubNub:
        """A client holding ``token`` (history, files); the caller must ``stop()`` it."""
        pubnub = self._build()
        if token:
            pubnub.set_token(token)
        return pubnub

    def subscription(
        self, channel: str, token: str | None, cursor: int, sink: SubscriptionSink
    ) -> SubscriptionMember:
        """A subscription to ``channel`` after timetoken ``cursor``, not started yet: the
        caller ``start()``s it (ClosedError after :meth:`close`) and ``stop()``s it. It
        shares a poll with the other sessions its token's grants allow."""
        return self._groups.subscription(self.subscribe_key, channel, token, cursor, sink)

    @property
    def poll_groups(self) -> PollGroups:
        """The sessions' poll groups (tests, benchmarks)."""
        return self._groups

    def close(self) -> None:
        """End idle poll threads and close idle connections; safe to call twice."""
        threads, connections = self._polls
        self._loop.close()
        # Abort the polls still held (stream readers nobody stopped) before joining threads.
        connections.close()
        threads.close()

    @property
    def clock_calibrated(self) -> bool:
        """Whether :meth:`cursor` answers without a request (the first call sends one)."""
        return self._clock.calibrated

    def cursor(self) -> int:
        """A timetoken safely before any event published from now on (for a new channel)."""
        now = self._clock.now()
        if now is None:
            return STREAM_REPLAY_TIMETOKEN
        return max(STREAM_REPLAY_TIMETOKEN, now - int(CURSOR_MARGIN_S * _TICKS_PER_SECOND))
