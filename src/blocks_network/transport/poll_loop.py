"""Many channels' subscribe long-polls on one selector thread (consumer sessions).

Each task channel has a read token of its own and a subscribe request carries one token
(protocol.md §6, pubnub-wire.md §3), so each open session still sends its own long-poll
over its own keep-alive connection. What no longer scales with the sessions is threads: a
poll that is waiting for the server sits in one :mod:`selectors` loop
(``blocks-session-poll-loop``); only when its answer arrives is it read, delivered to the
session and the next poll sent, on a thread borrowed from :class:`PollThreads` for that
moment. Back-offs after failures are timers of the same loop, not sleeping threads.

The requests and the judging of answers are :class:`SubscribeRequests`', exactly as the
thread-per-loop :class:`ChannelSubscription` sends them.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Final

from blocks_network.errors import ClosedError
from blocks_network.transport.connections import PlainConnection
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import (
    TIMED_OUT,
    PollAnswer,
    PollConnections,
    SubscribeRequests,
    SubscriptionSink,
    abort_poll,
    read_poll,
    send_poll,
)

__all__ = ["MultiplexedSubscription", "PollLoop"]

logger = logging.getLogger(__name__)

_THREAD_NAME: Final = "blocks-session-poll-loop"
_WORKER_NAME: Final = "blocks-session-poll"
#: Threads that read answers, deliver them to sessions and send the next polls; more
#: answers than this at once wait their turn (a session's callbacks hold one while they run).
WORKER_THREADS: Final = 8
_PEEK_BYTES: Final = 65536
_JOIN_TIMEOUT_S: Final = 5.0
#: The least time between two checks of the waiting polls' deadlines (each check looks at
#: every waiting poll, so many polls due at nearly the same time are checked together).
SWEEP_GAP_S: Final = 0.1

Action = Callable[[], None]


class PollLoop:
    """One daemon thread waiting on every idle poll's socket and on retry timers; what
    becomes due runs on ``threads`` (by default a pool of its own of at most
    :data:`WORKER_THREADS`, closed with it). Started on first use; thread-safe."""

    def __init__(self, threads: PollThreads | None = None) -> None:
        self._owns_threads = threads is None
        self._threads = threads or PollThreads(thread_name=_WORKER_NAME, max_threads=WORKER_THREADS)
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        # Work for the loop thread (only it touches the selector), and timers.
        self._commands: list[Action] = []
        self._timers: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        # When the earliest waiting poll's deadline passes (monotonic).
        self._next_sweep = float("inf")
        self._closed = False

    # --- called from any thread -----------------------------------------------------------------

    def watch(self, sub: MultiplexedSubscription, sock: socket.socket) -> None:
        """Call ``sub._readable()`` (on a pool thread) once ``sock`` has an answer to read,
        or ``sub._timed_out()`` once ``sub.deadline`` (monotonic) has passed."""
        self._post(lambda: self._register(sub, sock))

    def forget(self, sub: MultiplexedSubscription, conn: PlainConnection) -> None:
        """Stop watching ``sub``'s socket and discard its connection (the poll is abandoned)."""
        self._post(lambda: self._unregister(sub, conn))

    def call_later(self, delay_s: float, job: Action) -> None:
        """Run ``job`` on a pool thread after ``delay_s`` seconds."""
        due = time.monotonic() + delay_s
        self._post(lambda: heapq.heappush(self._timers, (due, next(self._order), job)))

    def submit(self, job: Action) -> None:
        """Run ``job`` on a pool thread now (ClosedError once closed)."""
        self._threads.submit(job)

    @property
    def watched(self) -> int:
        """Polls waiting for an answer (tests, benchmarks)."""
        selector = self._selector
        # A closed selector has no map (None).
        polls = None if selector is None else selector.get_map()
        return 0 if polls is None else max(0, len(polls) - 1)

    def close(self) -> None:
        """Close every watched poll's connection and end the thread; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread, wake = self._thread, self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):
                wake.send(b"x")
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        if self._owns_threads:
            self._threads.close()

    def _post(self, command: Action) -> None:
        with self._lock:
            if self._closed:
                raise ClosedError("the subscriptions were closed; create a new client")
            if self._thread is None:
                self._start()
            # Commands already waiting mean the loop was woken for them: one wake-up serves all.
            wake = None if self._commands else self._wake_w
            self._commands.append(command)
        if wake is not None:
            with contextlib.suppress(BlockingIOError):
                wake.send(b"x")  # a full buffer means a wake-up is pending anyway

    def _start(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
        self._thread.start()

    # --- the loop thread ------------------------------------------------------------------------

    def _register(self, sub: MultiplexedSubscription, sock: socket.socket) -> None:
        assert self._selector is not None
        try:
            self._selector.register(sock, selectors.EVENT_READ, sub)
        except (ValueError, KeyError, OSError):
            # Closed meanwhile (stop() raced the send): let the subscription see it.
            self._dispatch(sub._readable)
            return
        self._next_sweep = min(self._next_sweep, sub.deadline)

    def _unregister(self, sub: MultiplexedSubscription, conn: PlainConnection) -> None:
        assert self._selector is not None
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                if self._selector.get_key(sock).data is sub:
                    self._selector.unregister(sock)
        sub._discard()

    def _sweep(self, now: float) -> None:
        """Hand the polls waiting past their deadline back to be sent again, and note when
        the next one is due."""
        assert self._selector is not None
        earliest = float("inf")
        for key in list(self._selector.get_map().values()):
            sub = key.data
            if sub is None:
                continue
            if sub.deadline <= now:
                self._selector.unregister(key.fileobj)
                self._dispatch(sub._timed_out)
            else:
                earliest = min(earliest, sub.deadline)
        self._next_sweep = max(earliest, now + SWEEP_GAP_S)

    def _dispatch(self, job: Action) -> None:
        # A closed pool means the client is closing: its subscriptions end with it.
        with contextlib.suppress(ClosedError):
            self._threads.submit(job)

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None and self._wake_r is not None
        try:
            while True:
                with self._lock:
                    closed = self._closed
                    commands, self._commands = self._commands, []
                if closed:
                    return
                for command in commands:
                    command()
                timeout = self._run_timers()
                for key, _ in selector.select(timeout):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                        continue
                    selector.unregister(key.fileobj)
                    self._dispatch(key.data._readable)
        except Exception:
            logger.exception("the sessions' poll loop failed; sessions stop receiving events")
        finally:
            self._shut_down(selector)

    def _run_timers(self) -> float | None:
        """Run the timers due; the seconds until the next one (None: no timer)."""
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, job = heapq.heappop(self._timers)
            self._dispatch(job)
        if now >= self._next_sweep:
            self._sweep(now)
        next_due = (
            self._next_sweep if not self._timers else min(self._next_sweep, self._timers[0][0])
        )
        return None if next_due == float("inf") else max(0.0, next_due - now)

    def _shut_down(self, selector: selectors.BaseSelector) -> None:
        for key in list(selector.get_map().values()):
            if key.data is not None:
                key.data._abandon()
        selector.close()
        self._timers.clear()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()


def _answer_arrived(conn: PlainConnection, sock: ssl.SSLSocket) -> bool:
    """Whether a readable TLS socket has answer bytes (kept in ``conn``), or its end or an
    error for the read to report; False when only post-handshake records (TLS 1.3 session
    tickets) arrived, which make the socket readable with nothing to read yet."""
    if sock.pending():
        return True
    sock.setblocking(False)
    try:
        data = sock.recv(_PEEK_BYTES)
    except ssl.SSLWantReadError:
        return False
    except OSError:
        return True  # the read reports it
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(conn.timeout)
    conn.unread(data)
    return True


class _State(Enum):
    IDLE = "idle"  # on a pool thread: sending, reading or delivering
    WAITING = "waiting"  # its poll sits in the loop's selector
    SLEEPING = "sleeping"  # a back-off timer will send the next poll


class MultiplexedSubscription(SubscribeRequests):
    """Follows ``channel`` from timetoken ``cursor`` until :meth:`stop`, on a
    :class:`PollLoop`; the same contract as :class:`ChannelSubscription` (messages in
    order, ``denied`` once on a 403, failures retried with back-off, timed-out polls sent
    again), but no thread is held while waiting for the server."""

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
        loop: PollLoop,
        connections: PollConnections,
    ) -> None:
        super().__init__(
            endpoint=endpoint,
            subscribe_key=subscribe_key,
            channel=channel,
            token=token,
            user_id=user_id,
            cursor=cursor,
            sink=sink,
        )
        self._loop = loop
        self._connections = connections
        self._conn: PlainConnection | None = None
        self._state = _State.IDLE
        # On a pool thread sending or reading a poll (stop() must wake it).
        self._in_flight = False
        #: When the waiting poll is given up and sent again (monotonic).
        self.deadline = 0.0

    def start(self) -> None:
        """Send the first poll from a pool thread (raises ClosedError if closed)."""
        self._loop.submit(self._send)

    def stop(self) -> None:
        """End the subscription; a waiting or in-flight poll is abandoned."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            state, conn, in_flight = self._state, self._conn, self._in_flight
        if conn is None:
            return
        if state is _State.WAITING:
            try:
                self._loop.forget(self, conn)
            except ClosedError:
                self._discard()
        elif state is _State.SLEEPING:
            self._release()  # between polls: the connection is clean, and the loop may close
        elif in_flight:
            abort_poll(conn)  # wakes the pool thread blocked on it

    # --- pool-thread steps ----------------------------------------------------------------------

    def _send(self, retry_stale: bool = True) -> None:
        """Send the next poll and hand it to the loop to wait for."""
        with self._lock:
            # Checked under the lock: stop() then either sees this poll in flight (and
            # aborts it) or has already released the connection. A closed pool ends the
            # subscription too (its connection would reconnect outside the pool).
            stopped = self._stopped.is_set() or self._connections.closed
            if not stopped:
                self._state = _State.IDLE
                if self._conn is None:
                    try:
                        self._conn = self._connections.take()
                    except ClosedError:
                        return  # the client closed: nothing to follow
                conn = self._conn
                self._in_flight = True
        if stopped:
            self._release()
            return
        try:
            failure = send_poll(conn, self._target(), self._stopped)
        finally:
            with self._lock:
                self._in_flight = False
        if failure is not None:
            self._after(failure, retry_stale)
            return
        sock = conn.sock
        with self._lock:
            unread = self._stopped.is_set() or sock is None
            if not unread:
                self._state = _State.WAITING
                self.deadline = time.monotonic() + conn.timeout
        if unread or sock is None:
            self._discard()  # stopped while sending: the poll goes unread
            return
        self._wait_for(sock)

    def _readable(self) -> None:
        """The loop saw the poll's answer arrive (or its socket close): read it."""
        with self._lock:
            conn = self._conn
            stopped = self._stopped.is_set() or conn is None
            if not stopped:
                self._state = _State.IDLE
                self._in_flight = True
        if stopped or conn is None:
            self._discard()
            return
        sock = conn.sock
        if isinstance(sock, ssl.SSLSocket) and not _answer_arrived(conn, sock):
            # Only TLS housekeeping (session tickets) arrived: keep waiting without a thread.
            with self._lock:
                self._in_flight = False
                stopped = self._stopped.is_set()
                if not stopped:
                    self._state = _State.WAITING
            if stopped:
                self._discard()
            else:
                self._wait_for(sock)
            return
        try:
            answer = read_poll(conn)
        finally:
            with self._lock:
                self._in_flight = False
        self._after(answer, retry_stale=True)

    def _timed_out(self) -> None:
        """No answer within the connection's timeout: poll again on a new connection."""
        with self._lock:
            conn, self._state = self._conn, _State.IDLE
        if conn is not None:
            conn.close()
        logger.debug("subscribe on %s timed out; polling again", self._path)
        self._send()

    def _after(self, answer: PollAnswer, retry_stale: bool) -> None:
        if self._stopped.is_set() or self._connections.closed:
            self._release()
            return
        if answer is TIMED_OUT:
            self._send()
            return
        if answer.stale and retry_stale:
            self._send(retry_stale=False)  # a kept-alive connection the server had dropped
            return
        try:
            delay = self._judge(answer)
        except Exception:
            logger.exception("delivering events of %s failed; the subscription stopped", self._path)
            delay = None
        if delay is None:
            self._release()
        elif delay == 0:
            self._send()
        else:
            with self._lock:
                self._state = _State.SLEEPING
            try:
                self._loop.call_later(delay, self._send)
            except ClosedError:
                self._release()

    def _release(self) -> None:
        """The subscription ended between polls: hand its connection back for reuse."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            self._connections.give_back(conn)

    def _wait_for(self, sock: socket.socket) -> None:
        """Hand the sent poll to the loop (its connection is discarded if the loop closed)."""
        try:
            self._loop.watch(self, sock)
        except ClosedError:
            self._discard()

    def _abandon(self) -> None:
        """The loop is closing with this poll waiting: discard its connection."""
        self._stopped.set()
        self._discard()

    def _discard(self) -> None:
        """The subscription ended mid-poll: close its connection and hand it back to the
        pool's accounting (idempotent: a stop racing an answer may get here twice)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            self._connections.discard(conn)
