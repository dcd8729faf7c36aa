"""The realtime side of one TaskClient: per-session PubNub clients and the server clock.

Why a client per session: the backend grants a read token per task channel, and a PubNub
client carries one token on every request, so one client cannot subscribe to two tasks'
channels. What makes that cheap: every client shares the TaskClient's keep-alive HTTP pool
(``transport.pubnub_http``), and the next session's client is built in advance on a
background thread (threads started, poll connection open) while the current task runs.

Why a server clock estimate: a new task's channel is empty before SendMessage, so
subscribing from a timetoken taken *before* the call replays every event of the task from
the server's cache. One ``/time/0`` request per TaskClient calibrates the offset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from pubnub.pubnub import PubNub

from blocks_network.errors import BlocksError
from blocks_network.protocol.constants import STREAM_REPLAY_TIMETOKEN
from blocks_network.protocol.ids import new_session_client_id
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint, create_pubnub
from blocks_network.transport.pubnub_http import PooledRequestHandler, use_pooled_requests

__all__ = ["SessionRealtime"]

logger = logging.getLogger(__name__)

_TICKS_PER_SECOND: Final = 10_000_000
#: How far before "now" a fresh task's subscription starts (covers clock drift).
CURSOR_MARGIN_S: Final = 2.0
_TIME_TIMEOUT_S: Final = 5.0
_WARMER_THREAD_NAME: Final = "blocks-session-warmer"
_JOIN_TIMEOUT_S: Final = 5.0


class _ServerClock:
    """``server timetoken ≈ local time + offset``; calibrated once, lazily; thread-safe."""

    def __init__(self, endpoint: RealtimeEndpoint, http: HttpClient) -> None:
        scheme = "https" if endpoint.ssl else "http"
        self._url = f"{scheme}://{endpoint.origin}/time/0"
        self._http = http
        self._lock = threading.Lock()
        self._offset: int | None = None

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


class _SpareClient:
    """Keeps one client built in advance (threads started, poll connection open), so a new
    session only sets its token and subscribes. Refilled on ``blocks-session-warmer``."""

    def __init__(self, build: Callable[[], PubNub]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._spare: PubNub | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def take(self) -> PubNub | None:
        """The spare client (None if none is ready yet); asks for a new one."""
        with self._lock:
            if self._closed:
                return None
            spare, self._spare = self._spare, None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=_WARMER_THREAD_NAME, daemon=True
                )
                self._thread.start()
        self._wanted.set()
        return spare

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                if self._closed:
                    return
                if self._spare is not None:
                    continue
            try:
                client = self._build()
            except Exception:
                logger.warning("could not prepare a realtime client in advance", exc_info=True)
                continue
            with self._lock:
                if not self._closed:
                    self._spare, client = client, None
            if client is not None:
                client.stop()
                return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
            thread = self._thread
        self._wanted.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        if spare is not None:
            spare.stop()


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
    ) -> None:
        self.endpoint = endpoint
        self.subscribe_key = subscribe_key
        self.publish_key = publish_key
        self._http = http
        self._clock = clock or _ServerClock(endpoint, http)
        # One PubNub user id for all of this client's sessions: the server tracks a known
        # uuid's presence more cheaply (~0.4 ms per subscribe) than a new one's.
        self._user_id = new_session_client_id()
        self._spares = _SpareClient(self._build)

    @property
    def http(self) -> HttpClient:
        """The shared keep-alive pool (sessions' stream readers use it too)."""
        return self._http

    def with_keys(self, subscribe_key: str | None, publish_key: str | None) -> SessionRealtime:
        """The same endpoint and pool on another keyset (a SendMessage result may name one).

        Such a context keeps no spare client, so it needs no :meth:`close`.
        """
        if (subscribe_key or self.subscribe_key) == self.subscribe_key:
            return self
        other = SessionRealtime(
            self.endpoint, subscribe_key or self.subscribe_key, publish_key, self._http, self._clock
        )
        other._spares.close()
        return other

    def _build(self) -> PubNub:
        pubnub = create_pubnub(
            subscribe_key=self.subscribe_key,
            publish_key=self.publish_key,
            user_id=self._user_id,
            endpoint=self.endpoint,
        )
        # Sessions never need presence: don't send a leave call when they stop.
        pubnub.config.suppress_leave_events = True
        use_pooled_requests(pubnub, self._http)
        handler = pubnub.get_request_handler()
        if isinstance(handler, PooledRequestHandler):
            handler.prepare("https" if self.endpoint.ssl else "http", self.endpoint.origin)
        return pubnub

    def client(self, token: str | None) -> PubNub:
        """A client holding ``token`` (the one built in advance when ready); the caller must
        ``stop()`` it."""
        pubnub = self._spares.take() or self._build()
        if token:
            pubnub.set_token(token)
        return pubnub

    def close(self) -> None:
        """Stop the client kept for the next session; safe to call twice."""
        self._spares.close()

    def cursor(self) -> int:
        """A timetoken safely before any event published from now on (for a new channel)."""
        now = self._clock.now()
        if now is None:
            return STREAM_REPLAY_TIMETOKEN
        return max(STREAM_REPLAY_TIMETOKEN, now - int(CURSOR_MARGIN_S * _TICKS_PER_SECOND))
