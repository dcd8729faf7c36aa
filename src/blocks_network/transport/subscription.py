"""One channel's subscribe long-poll loop, as plain keep-alive HTTP (pubnub-wire.md §3).

Why not the official client: consumer sessions and the agent's control channel need only
"deliver each message of one channel, in order, with its timetoken and meta", and the
official client hands every response and message through two more threads and a queue
(~2 ms per hop), and costs a TCP connection and ~3 ms of CPU to set up per task. Here a
loop runs on a thread borrowed from :class:`PollThreads`, each poll a request through the
SDK's one :class:`~blocks_network.transport.base.Transport` (:class:`PollConnections`
holds it, with a long read timeout), whose pool keeps the connection for the next poll or
the next subscription.

The requests are exactly the official client's: ``GET /v2/subscribe/{sub}/{ch}/0`` with
``tt``/``tr``, ``uuid``, ``pnsdk``, the token in ``auth`` and, when asked for,
``filter-expr`` and ``heartbeat``.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import quote

from blocks_network.errors import CertificateError, ClosedError
from blocks_network.transport.base import Abort, Request, Transport
from blocks_network.transport.connections import split_origin
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pool import ConnectionPool, Origin
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.pubnub_query import encode_params, identity_query
from blocks_network.transport.retry import RECONNECT

__all__ = ["ChannelSubscription", "PollConnections", "PollFailure", "SubscriptionSink"]

logger = logging.getLogger(__name__)

#: The official client's subscribe request timeout (servers answer well before it).
SUBSCRIBE_TIMEOUT_S: Final = 310.0
#: Back-off after a failed poll (until stopped), so a restarted network is followed again
#: within seconds.
RETRY: Final = RECONNECT
_MAX_IDLE_CONNECTIONS: Final = 64
#: What the official client's requests carry besides Host.
_POLL_HEADERS: Final = "Accept-Encoding: identity\r\n"
#: Envelope ``e`` values delivered as messages (absent or 0); signals, files etc. are not.
_MESSAGE_TYPES: Final = (None, 0)

#: Why a poll failed, as :class:`SubscriptionSink` ``failed`` hears it; the names are the
#: stream error categories the official client's statuses map to (a lost connection is its
#: "unexpected disconnect", any other status its "unknown" category).
PollFailure = Literal["bad_request", "network_down", "malformed_response", "other"]


class _Answer(NamedTuple):
    """One poll's outcome: an HTTP status and body, or ``status == 0`` and the network
    error's description in ``error``."""

    status: int
    body: bytes
    error: str = ""


#: What :meth:`ChannelSubscription._poll` returns for a poll the client's timeout ended.
_TIMED_OUT: Final = _Answer(0, b"", "timed out")


class SubscriptionSink:
    """Where a subscription reports, on its poll thread:

    - ``message(payload, timetoken, meta, publisher)`` for each message, in order;
    - ``denied()`` once, on a 403 (the loop has ended);
    - ``connected(reconnected)``, optional, after the first answered poll and after the
      first answered poll that follows failures;
    - ``failed(why, description)``, optional, for each failed poll before its retry (the
      sink may :meth:`ChannelSubscription.stop` the loop from it). Without it, failures
      are logged as warnings.
    """

    def __init__(
        self,
        message: Callable[[object, int | None, object, str | None], None],
        denied: Callable[[], None],
        connected: Callable[[bool], None] | None = None,
        failed: Callable[[PollFailure, str], None] | None = None,
    ) -> None:
        self.message = message
        self.denied = denied
        self.connected = connected
        self.failed = failed


class PollConnections:
    """The transport subscriptions poll the realtime origin through: keep-alive connections
    with the subscribe read timeout, shared by subscriptions (``transport``: another
    transport to share; :meth:`close` then leaves it to its owner)."""

    def __init__(
        self,
        endpoint: RealtimeEndpoint,
        timeout_s: float = SUBSCRIBE_TIMEOUT_S,
        transport: Transport | None = None,
    ) -> None:
        scheme = "https" if endpoint.ssl else "http"
        host, port = split_origin(endpoint.origin, 443 if endpoint.ssl else 80)
        self.origin: Origin = (scheme, host, port)
        self.timeout_s = timeout_s
        self._owned = transport is None
        self.transport = transport or Transport(
            ConnectionPool(
                timeout=timeout_s,
                max_idle=_MAX_IDLE_CONNECTIONS,
                closed_message="the subscriptions were closed; create a new client",
            )
        )

    def poll(self, target: str, abort: Abort) -> tuple[int, bytes]:
        """One long-poll of ``target``: status and body. Raises as
        :meth:`Transport.handle_request` does (ClosedError once closed or aborted)."""
        response = self.transport.handle_request(
            Request("GET", self.origin, target, _POLL_HEADERS, None, self.timeout_s, abort)
        )
        return response.status, response.body

    def close(self) -> None:
        if self._owned:
            self.transport.close()


class ChannelSubscription:
    """Follows ``channel`` from timetoken ``cursor`` until :meth:`stop`; not restartable.

    Messages reach ``sink.message`` in order on the poll thread; a 403 calls ``sink.denied``
    once and ends the loop. Network errors and other statuses are retried with back-off,
    from the same cursor, until stopped; a poll that outlives the connections' timeout is
    simply sent again. ``filter_expr`` and ``heartbeat`` (presence timeout, s) are sent
    with every poll.
    """

    def __init__(
        self,
        *,
        endpoint: RealtimeEndpoint,
        subscribe_key: str,
        channel: str,
        token: str | None,
        user_id: str,
        cursor: int,
        sink: SubscriptionSink,
        threads: PollThreads,
        connections: PollConnections,
        filter_expr: str | None = None,
        heartbeat: int | None = None,
    ) -> None:
        self._path = f"/v2/subscribe/{quote(subscribe_key, safe='')}/{quote(channel, safe='')}/0"
        self._endpoint = endpoint
        self._token = token
        self._user_id = user_id
        options: dict[str, str] = {}
        if filter_expr:
            options["filter-expr"] = filter_expr
        if heartbeat is not None:
            options["heartbeat"] = str(heartbeat)
        # What every poll repeats after the cursor, encoded once.
        self._options = f"&{encode_params(options)}" if options else ""
        self._tt = cursor
        self._tr: int | None = None
        self._sink = sink
        self._threads = threads
        self._connections = connections
        self._stopped = threading.Event()
        self._abort = Abort()

    def set_token(self, token: str | None) -> None:
        """Send ``token`` from the next poll on."""
        self._token = token

    def start(self) -> None:
        """Start polling on a pool thread (raises ClosedError if the pool is closed)."""
        self._threads.submit(self._run)

    def stop(self) -> None:
        """End the loop; an in-flight poll is aborted (unless called from the loop itself)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        # Between polls (e.g. called from the loop's own sink) there is nothing to abort.
        self._abort.abort()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # --- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        answered = False
        try:
            while not self._stopped.is_set():
                answer = self._poll()
                if answer is None or self._stopped.is_set():
                    return
                if answer is _TIMED_OUT:
                    continue
                if answer.status == 403:
                    self._stopped.set()
                    self._sink.denied()
                    return
                if answer.status == 200 and self._deliver(answer.body):
                    if (failures or not answered) and self._sink.connected is not None:
                        self._sink.connected(answered)
                    elif failures and self._sink.failed is None:
                        logger.info("subscribe on %s reconnected", self._path)
                    failures = 0
                    answered = True
                    continue
                self._report_failure(answer, first=failures == 0)
                failures += 1
                RETRY.backoff(failures, self._stopped)
        except Exception:
            logger.exception("subscription loop for %s failed", self._path)

    def _report_failure(self, answer: _Answer, *, first: bool) -> None:
        why, description = _describe_failure(answer)
        if self._sink.failed is None:
            # One warning per outage: the retries that follow would flood the log.
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "subscribe on %s failed (%s); retrying until it answers",
                self._path,
                description,
            )
            return
        logger.debug("subscribe on %s failed (%s)", self._path, description)
        self._sink.failed(why, description)

    def _query(self) -> str:
        cursor = f"tt={self._tt}" if self._tr is None else f"tt={self._tt}&tr={self._tr}"
        return f"{cursor}{self._options}&{identity_query(self._user_id, self._token)}"

    def _poll(self) -> _Answer | None:
        """One long-poll's answer (a network error is ``status == 0``), :data:`_TIMED_OUT`,
        or None once stopped (or the connections were closed)."""
        if self._stopped.is_set():
            return None
        try:
            status, body = self._connections.poll(f"{self._path}?{self._query()}", self._abort)
        except ClosedError:
            return None
        except (http.client.HTTPException, OSError, CertificateError) as exc:
            if self._stopped.is_set():
                return None
            if isinstance(exc, TimeoutError):
                logger.debug("subscribe on %s timed out; polling again", self._path)
                return _TIMED_OUT
            return _Answer(0, b"", str(exc) or type(exc).__name__)
        return _Answer(status, body)

    def _deliver(self, body: bytes) -> bool:
        """Hand the envelope's messages to the sink; False if the body is not an envelope."""
        try:
            envelope: Any = json.loads(body)
            cursor = envelope["t"]
            messages = envelope["m"]
            next_tt = int(cursor["t"])
            next_tr = int(cursor.get("r", 0))
        except (ValueError, TypeError, KeyError, AttributeError):
            return False
        for message in messages:
            if self._stopped.is_set():
                return True
            if not isinstance(message, dict) or message.get("e") not in _MESSAGE_TYPES:
                continue
            try:
                timetoken: int | None = int(message["p"]["t"])
            except (KeyError, TypeError, ValueError):
                timetoken = None
            publisher = message.get("i")
            self._sink.message(
                message.get("d"),
                timetoken,
                message.get("u"),
                publisher if isinstance(publisher, str) else None,
            )
        self._tt, self._tr = next_tt, next_tr
        return True


def _describe_failure(answer: _Answer) -> tuple[PollFailure, str]:
    """Classify a failed poll the way the official client's statuses do."""
    if answer.status == 0:
        return "network_down", answer.error
    if answer.status == 200:
        return "malformed_response", "the subscribe response is not a subscribe envelope"
    detail = f"HTTP {answer.status}"
    try:
        message = json.loads(answer.body).get("message")
    except (ValueError, AttributeError):
        message = None
    if isinstance(message, str) and message:
        detail = f"{detail}: {message}"
    return ("bad_request" if answer.status == 400 else "other"), detail
