"""One channel's subscribe long-poll loop, as plain keep-alive HTTP (pubnub-wire.md §3).

Why not the official client: consumer sessions and the agent's control channel need only
"deliver each message of one channel, in order, with its timetoken and meta", and the
official client hands every response and message through two more threads and a queue
(~2 ms per hop), and costs a TCP connection and ~3 ms of CPU to set up per task. Here a
loop runs on a thread borrowed from :class:`PollThreads` over a connection borrowed from
:class:`PollConnections`; a loop that ends by itself (e.g. after a task's terminal) hands
both back for the next subscription.

The requests are exactly the official client's: ``GET /v2/subscribe/{sub}/{ch}/0`` with
``tt``/``tr``, ``uuid``, ``pnsdk``, the token in ``auth`` and, when asked for,
``filter-expr`` and ``heartbeat``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import quote

from blocks_network.errors import CertificateError, ClosedError
from blocks_network.transport.base import Transport
from blocks_network.transport.connections import PlainConnection, split_origin
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pool import ConnectionPool, Origin
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.pubnub_query import encode_params, identity_query
from blocks_network.transport.retry import RECONNECT, wait

__all__ = [
    "TIMED_OUT",
    "ChannelSubscription",
    "PollAnswer",
    "PollConnections",
    "PollFailure",
    "SubscribeRequests",
    "SubscriptionSink",
    "abort_poll",
    "failed_answer",
    "read_poll",
    "send_poll",
]

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


class PollAnswer(NamedTuple):
    """One poll's outcome: an HTTP status and body, or ``status == 0`` and the network
    error's description in ``error`` (``stale``: a kept-alive connection the server had
    dropped)."""

    status: int
    body: bytes
    error: str = ""
    stale: bool = False


#: The answer standing for a poll the client's timeout ended (it is simply sent again).
TIMED_OUT: Final = PollAnswer(0, b"", "timed out")


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
    """The connections subscriptions poll the realtime origin over, checked out of a
    :class:`~blocks_network.transport.pool.ConnectionPool` (the SDK's one pool
    implementation) for as long as a subscription runs, with the subscribe read timeout.
    ``transport``: share another transport's pool (its owner then closes it). A poll
    loop sends and reads its polls itself (a selector waits on many at once), so it takes
    a connection rather than calling :meth:`Transport.handle_request`."""

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

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or the shared transport's close) ended every poll."""
        return self.transport.pool.closed

    def take(self) -> PlainConnection:
        """An idle connection, or a new (not yet connected) one; ClosedError after close()."""
        conn, _ = self.transport.pool.checkout(self.origin, timeout=self.timeout_s)
        return conn

    def give_back(self, conn: PlainConnection) -> None:
        """Keep ``conn`` for reuse (closed instead if not idle, or the pool is closed or full)."""
        self.transport.pool.checkin(conn)

    def discard(self, conn: PlainConnection) -> None:
        """Close a taken connection for good."""
        self.transport.pool.discard(conn)

    def close(self) -> None:
        """Close idle connections and abort taken ones (their polls end at once)."""
        if self._owned:
            self.transport.close()


class SubscribeRequests:
    """What every poll of one channel's subscription sends and how its answers are judged:
    the request target, the cursor, the sink; shared by the thread-per-loop
    :class:`ChannelSubscription` and the multiplexed sessions' loop (``poll_loop.py``)."""

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
        filter_expr: str | None = None,
        heartbeat: int | None = None,
    ) -> None:
        self._prefix = f"/v2/subscribe/{quote(subscribe_key, safe='')}/"
        self._channel_path = f"{self._prefix}{quote(channel, safe='')}/0"
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
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._failures = 0
        self._answered = False

    def set_token(self, token: str | None) -> None:
        """Send ``token`` from the next poll on."""
        self._token = token

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def _path(self) -> str:
        """What logs name the subscription by."""
        return self._channel_path

    def _target(self) -> str:
        return self._target_from(self._channel_path, self._tt, self._tr)

    def _target_from(self, path: str, tt: int, tr: int | None) -> str:
        cursor = f"tt={tt}" if tr is None else f"tt={tt}&tr={tr}"
        query = f"{cursor}{self._options}&{identity_query(self._user_id, self._token)}"
        return f"{path}?{query}"

    def _judge(self, answer: PollAnswer) -> float | None:
        """Deliver or report ``answer``: the seconds to wait before the next poll (0 for at
        once), or None when the loop has ended (403, or stopped meanwhile)."""
        if self._stopped.is_set():
            return None
        if answer.status == 403:
            return self._refused(answer.body)
        if answer.status == 200 and self._deliver(answer.body):
            if (self._failures or not self._answered) and self._sink.connected is not None:
                self._sink.connected(self._answered)
            elif self._failures and self._sink.failed is None:
                logger.info("subscribe on %s reconnected", self._path)
            self._failures = 0
            self._answered = True
            return 0.0
        self._report_failure(answer, first=self._failures == 0)
        self._failures += 1
        delay = RETRY.delay(self._failures)
        return None if delay is None or self._stopped.is_set() else delay

    def _refused(self, body: bytes) -> float | None:
        """A 403: the token does not (or no longer) read the channel; the loop ends."""
        self._stopped.set()
        self._sink.denied()
        return None

    def _report_failure(self, answer: PollAnswer, *, first: bool) -> None:
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
            self._hand_over(message, timetoken)
        self._delivered(next_tt, next_tr)
        return True

    def _hand_over(self, message: dict[str, Any], timetoken: int | None) -> None:
        """Give one envelope message to its sink."""
        publisher = message.get("i")
        self._sink.message(
            message.get("d"),
            timetoken,
            message.get("u"),
            publisher if isinstance(publisher, str) else None,
        )

    def _delivered(self, next_tt: int, next_tr: int) -> None:
        """An envelope was handed over: the next poll continues from its cursor."""
        self._tt, self._tr = next_tt, next_tr


def send_poll(conn: PlainConnection, target: str, stopped: threading.Event) -> PollAnswer | None:
    """Send one poll on ``conn``, connecting it first if needed: None once sent (or when
    ``stopped`` was set while connecting: then nothing is sent), else the failure's answer
    (``conn`` is then closed)."""
    try:
        if conn.sock is None:
            conn.connect()
            if stopped.is_set():
                return None
        conn.request("GET", target, _POLL_HEADERS)
    except (http.client.HTTPException, OSError, CertificateError) as exc:
        conn.close()
        return failed_answer(exc)
    return None


def read_poll(conn: PlainConnection) -> PollAnswer:
    """The answer to the poll sent on ``conn``; a failure closes ``conn`` and is
    ``status == 0``, the client's timeout :data:`TIMED_OUT`."""
    try:
        response, _ = conn.read_response()
    except (http.client.HTTPException, OSError, CertificateError) as exc:
        conn.close()
        return failed_answer(exc)
    return PollAnswer(response.status, response.body)


def failed_answer(exc: BaseException) -> PollAnswer:
    """The answer a poll that raised ``exc`` stands for."""
    if isinstance(exc, TimeoutError):
        return TIMED_OUT
    return PollAnswer(0, b"", str(exc) or type(exc).__name__, _is_stale(exc))


def _is_stale(exc: BaseException) -> bool:
    """Whether ``exc`` is a kept-alive connection the server closed while idle (worth one
    immediate retry on a new connection)."""
    return isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))


class ChannelSubscription(SubscribeRequests):
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
        super().__init__(
            endpoint=endpoint,
            subscribe_key=subscribe_key,
            channel=channel,
            token=token,
            user_id=user_id,
            cursor=cursor,
            sink=sink,
            filter_expr=filter_expr,
            heartbeat=heartbeat,
        )
        self._threads = threads
        self._connections = connections
        self._conn: PlainConnection | None = None
        self._in_flight = False
        self._aborted = False

    def start(self) -> None:
        """Start polling on a pool thread (raises ClosedError if the pool is closed)."""
        self._threads.submit(self._run)

    def stop(self) -> None:
        """End the loop; an in-flight poll is aborted (unless called from the loop itself)."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            conn = self._conn if self._in_flight else None
            self._aborted = conn is not None
        if conn is not None:
            abort_poll(conn)

    # --- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            try:
                self._conn = self._connections.take()
            except ClosedError:
                return  # closed before this loop's first poll: nothing to follow
        try:
            while not self._stopped.is_set():
                answer = self._poll()
                if answer is None or self._stopped.is_set():
                    return
                if answer is TIMED_OUT:
                    logger.debug("subscribe on %s timed out; polling again", self._path)
                    continue
                delay = self._judge(answer)
                if delay is None:
                    return
                if delay:
                    wait(delay, self._stopped)
        except Exception:
            logger.exception("subscription loop for %s failed", self._path)
        finally:
            with self._lock:
                conn, self._conn = self._conn, None
                aborted = self._aborted
            if conn is not None:
                # Only a loop that ended between polls leaves a clean keep-alive connection.
                if aborted:
                    self._connections.discard(conn)
                else:
                    self._connections.give_back(conn)

    def _poll(self) -> PollAnswer | None:
        """One long-poll's answer (a network error is ``status == 0``), :data:`TIMED_OUT`,
        or None once stopped."""
        for attempt in (0, 1):
            conn = self._conn
            if conn is None:
                return None
            with self._lock:
                # A closed pool aborted this poll: never reconnect outside it.
                if self._stopped.is_set() or self._connections.closed:
                    return None
                self._in_flight = True
            try:
                answer = send_poll(conn, self._target(), self._stopped)
                if answer is None and not self._stopped.is_set():
                    answer = read_poll(conn)
            finally:
                with self._lock:
                    self._in_flight = False
            if self._stopped.is_set() or answer is None or self._connections.closed:
                conn.close()  # stopped while connecting (the poll went out unread) or closed
                return None
            if attempt == 0 and answer.stale:
                continue
            return answer
        return None


def abort_poll(conn: PlainConnection) -> None:
    """Wake the thread blocked reading ``conn``'s answer (``close()`` alone does not)."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _describe_failure(answer: PollAnswer) -> tuple[PollFailure, str]:
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
