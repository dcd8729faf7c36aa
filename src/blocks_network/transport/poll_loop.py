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
import functools
import heapq
import itertools
import json
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any, Final
from urllib.parse import quote

from blocks_network.errors import ClosedError
from blocks_network.protocol.token_scope import TokenScope
from blocks_network.transport.connections import PlainConnection
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import (
    TIMED_OUT,
    PollAnswer,
    PollConnections,
    PollFailure,
    SubscribeRequests,
    SubscriptionSink,
    abort_poll,
    read_poll,
    send_poll,
)

__all__ = ["MultiplexedSubscription", "PollLoop", "SubscriptionMember"]

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

#: A joiner's token that reads a group's channels replaces the group's when it lives at
#: least this much longer (seconds; checking every channel on every join would cost more).
_ADOPT_GAIN_S: Final = 300
#: A cursor at least as long as any real one, for sizing a poll's request target.
_LONGEST_TT: Final = 10**19

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

    def interrupt(self, sub: MultiplexedSubscription, conn: PlainConnection) -> None:
        """Abandon ``sub``'s waiting poll and call ``sub._interrupted()`` on a pool thread
        (nothing when its answer or deadline came first: the next poll goes out then)."""
        self._post(lambda: self._take_back(sub, conn))

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

    def _take_back(self, sub: MultiplexedSubscription, conn: PlainConnection) -> None:
        assert self._selector is not None
        sock = conn.sock
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            if self._selector.get_key(sock).data is sub:
                self._selector.unregister(sock)
                self._dispatch(sub._interrupted)

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


class SubscriptionMember:
    """One session's part of a group's poll: its channel, token, cursor and sink. Used as a
    subscription of its own (:meth:`start`, :meth:`stop`, :meth:`set_token`,
    :attr:`stopped`): messages of its channel after ``cursor`` reach ``sink.message`` once
    each, in order; ``sink.denied`` is called once if the server refuses its channel."""

    def __init__(
        self,
        channel: str,
        token: str | None,
        cursor: int,
        sink: SubscriptionSink,
        *,
        scope_of: Callable[[str | None], TokenScope | None] | None = None,
        place: Callable[[SubscriptionMember], None] | None = None,
    ) -> None:
        self.channel = channel
        self.token = token
        self._scope_of = scope_of
        #: What ``token`` claims to read (None: this member polls alone).
        self.scope = None if scope_of is None else scope_of(token)
        self.sink = sink
        #: Messages at or before this timetoken were delivered or precede the cursor.
        self.last = cursor
        #: The group's membership version when this member joined.
        self.joined = 0
        self.group: MultiplexedSubscription | None = None
        self._place = place
        self._stopped = threading.Event()
        # Deliveries waiting for their turn on a pool thread, one at a time and in order:
        # a slow callback holds up its own session, not the others sharing its poll.
        self._inbox: deque[tuple[Action, bool]] = deque()
        self._delivering = False
        self._inbox_lock = threading.Lock()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def hand(
        self, job: Action, submit: Callable[[Action], None], *, stopped_too: bool, alone: bool
    ) -> None:
        """Run ``job`` (a call of the sink) after this member's earlier ones, on a thread
        ``submit`` lends (``alone``: on this one, holding up no one else); skipped once the
        member stopped unless ``stopped_too``."""
        with self._inbox_lock:
            self._inbox.append((job, stopped_too))
            if self._delivering:
                return
            self._delivering = True
        if alone:
            # Before the group's next poll: a terminal that ends the session sends none.
            self._deliver()
            return
        try:
            submit(self._deliver)
        except ClosedError:  # the client closed: nothing more is delivered
            with self._inbox_lock:
                self._inbox.clear()
                self._delivering = False

    def refuse(self) -> None:
        """The server refused this member's channel (after what it delivered before): it
        stops and its sink hears ``denied`` once."""
        self._stopped.set()
        self.sink.denied()

    def _deliver(self) -> None:
        while True:
            with self._inbox_lock:
                if not self._inbox:
                    self._delivering = False
                    return
                job, stopped_too = self._inbox.popleft()
            if stopped_too or not self.stopped:
                try:
                    job()
                except Exception:
                    logger.exception("delivering events of %s failed; it stopped", self.channel)
                    self.stop()

    def start(self) -> None:
        """Join a group's poll (or start one); ClosedError once the client closed."""
        if self._place is not None:
            self._place(self)
        elif self.group is not None:
            self.group.start()

    def stop(self) -> None:
        """Receive nothing more; the channel leaves the group's next poll. Idempotent."""
        self._stopped.set()
        group = self.group
        if group is not None:
            group.leave(self)

    def rejoin(self) -> bool:
        """Poll elsewhere after the group's token was refused for this member's channel
        (False when it cannot: it polls alone, or the client closed)."""
        if self._place is None:
            return False
        try:
            self._place(self)
        except ClosedError:
            return False
        return True

    def set_token(self, token: str | None) -> None:
        """A fresh token for this member's channel; the group polls with it if it reads
        the group's channels and outlives the group's token (or the member is alone)."""
        self.token = token
        self.scope = None if self._scope_of is None else self._scope_of(token)
        group = self.group
        if group is not None:
            group.offer_token(self)


class MultiplexedSubscription(SubscribeRequests):
    """One long-poll on a :class:`PollLoop` following the channels of its members (the
    first one given here; more join with :meth:`admit`) with one token that reads them all
    (pubnub-wire.md §3). The contract of :class:`ChannelSubscription` holds per member
    (messages in order and once, ``denied`` once on a 403 naming its channel, failures
    retried with back-off, timed-out polls sent again), and no thread is held while
    waiting for the server. :meth:`start`/:meth:`stop` start and end the whole group."""

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
        member: SubscriptionMember | None = None,
    ) -> None:
        first = member or SubscriptionMember(channel, token, cursor, sink)
        super().__init__(
            endpoint=endpoint,
            subscribe_key=subscribe_key,
            channel=first.channel,
            token=first.token,
            user_id=user_id,
            cursor=first.last,
            # connected/failed reach every member that listens for them.
            sink=SubscriptionSink(
                _never,
                _never,
                self._connected,
                self._failed if first.sink.failed is not None else None,
            ),
        )
        self._loop = loop
        self._connections = connections
        self._conn: PlainConnection | None = None
        self._state = _State.IDLE
        # On a pool thread sending or reading a poll (stop() must wake it).
        self._in_flight = False
        #: When the waiting poll is given up and sent again (monotonic).
        self.deadline = 0.0
        self._scope = first.scope
        self._members: dict[str, list[SubscriptionMember]] = {}
        # Members no answered poll has covered yet: the next poll starts at their cursor.
        self._pending: list[SubscriptionMember] = []
        self._version = 0
        self._sent_version = 0
        self._channels_path: str | None = None
        self._channel_bytes = 0
        self._started = False
        # Channels a 403 named: their sessions' retries poll elsewhere.
        self._refused_channels: set[str] = set()
        # A waiting poll is being taken back to add joiners (at most one at a time).
        self._interrupting = False
        self._add(first)

    @property
    def _path(self) -> str:
        count = len(self._members)
        return self._channel_path if count < 2 else f"{self._channel_path} and {count - 1} more"

    @property
    def channels(self) -> list[str]:
        """The channels the next poll follows."""
        with self._lock:
            return list(self._members)

    def start(self) -> None:
        """Send the first poll from a pool thread (raises ClosedError if closed)."""
        with self._lock:
            started, self._started = self._started, True
        if not started:
            self._loop.submit(self._send)

    def stop(self) -> None:
        """End the subscription of every member; a waiting or in-flight poll is abandoned."""
        with self._lock:
            ended = self._end()
        if ended is not None:
            self._abandon_poll(*ended)

    def _end(self) -> tuple[_State, PlainConnection | None, bool] | None:
        """Under the lock: mark the group and its members stopped (in the same hold as the
        check that emptied it, so no joiner is admitted and then stopped unheard); the poll
        to abandon, None when it had ended already."""
        if self._stopped.is_set():
            return None
        self._stopped.set()
        for members in self._members.values():
            for member in members:
                member._stopped.set()
        return self._state, self._conn, self._in_flight

    def _abandon_poll(self, state: _State, conn: PlainConnection | None, in_flight: bool) -> None:
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

    # --- membership (any thread) ----------------------------------------------------------------

    def admit(
        self,
        member: SubscriptionMember,
        *,
        max_target_bytes: int,
        max_channels: int,
        margin_s: float,
    ) -> bool:
        """Add ``member`` if this group's token reads its channel (or ``member``'s token
        reads every channel here and becomes the group's) with ``margin_s`` of life left,
        and the poll stays within ``max_channels`` and ``max_target_bytes`` of target."""
        scope = member.scope
        with self._lock:
            if self._stopped.is_set() or self._connections.closed:
                return False  # a new group's start() then reports the close
            if scope is None or self._scope is None:
                return False
            new_channel = member.channel not in self._members
            if new_channel and len(self._members) >= max_channels:
                return False
            added = len(quote(member.channel)) + 1 if new_channel else 0
            # The path's ends, the longest cursor and the identity with the longer token.
            fixed = len(self._target_from(f"{self._prefix}/0", _LONGEST_TT, _LONGEST_TT))
            fixed += max(0, len(member.token or "") - len(self._token or ""))
            if fixed + self._channel_bytes + added > max_target_bytes:
                return False
            if member.channel in self._refused_channels:
                return False  # the server refused it with this group's token: poll it alone
            fresh_until = time.time() + margin_s
            if self._scope.reads(member.channel) and self._scope.expires_at > fresh_until:
                # A token living much longer keeps the group's fresh (checked rarely).
                adopt = scope.expires_at > self._scope.expires_at + _ADOPT_GAIN_S and (
                    scope.reads_all(self._members.keys())
                )
            elif (
                scope.expires_at > fresh_until
                and scope.reads(member.channel)
                and scope.reads_all(self._members.keys())
            ):
                adopt = True
            else:
                return False
            if adopt:
                self._token, self._scope = member.token, scope
            self._add(member)
            if member.stopped:  # stop() raced the join and saw no group yet
                self._remove(member)
                return True
            conn = self._take_back_waiting()
        if conn is not None:
            self._interrupt(conn)
        return True

    def leave(self, member: SubscriptionMember) -> None:
        """``member`` receives nothing more; the last one leaving ends the group."""
        with self._lock:
            self._remove(member)
            ended = None if self._members else self._end()
        if ended is not None:
            self._abandon_poll(*ended)

    def offer_token(self, member: SubscriptionMember) -> None:
        """Poll with ``member``'s new token when it is alone here, or when the token reads
        every channel and outlives the group's."""
        with self._lock:
            if member.group is not self:
                return
            alone = len(self._members) == 1
            scope = member.scope
            better = (
                scope is not None
                and (self._scope is None or scope.expires_at > self._scope.expires_at)
                and scope.reads_all(self._members.keys())
            )
            if alone or better:
                self._token, self._scope = member.token, scope

    def _add(self, member: SubscriptionMember) -> None:
        """Under the lock."""
        members = self._members.get(member.channel)
        if members is None:
            self._members[member.channel] = members = []
            self._channel_bytes += len(quote(member.channel)) + 1
            self._channels_path = None
        members.append(member)
        self._version += 1
        member.joined = self._version
        member.group = self
        self._pending.append(member)

    def _remove(self, member: SubscriptionMember) -> None:
        """Under the lock; idempotent."""
        member.group = None
        members = self._members.get(member.channel)
        if members is None or member not in members:
            return
        members.remove(member)
        if not members:
            del self._members[member.channel]
            self._channel_bytes -= len(quote(member.channel)) + 1
            self._channels_path = None
        if member in self._pending:
            self._pending.remove(member)

    def _take_back_waiting(self) -> PlainConnection | None:
        """Under the lock, after a join: the waiting poll's connection when that poll must
        be taken back to add the joiner (joins meanwhile ride on the same re-send)."""
        if not self._started or self._state is not _State.WAITING or self._interrupting:
            return None
        self._interrupting = True
        return self._conn

    def _interrupt(self, conn: PlainConnection) -> None:
        with contextlib.suppress(ClosedError):
            self._loop.interrupt(self, conn)

    # --- what each poll sends and how its answer is shared out (pool threads) ------------------

    def _target(self) -> str:
        with self._lock:
            self._sent_version = self._version
            self._interrupting = False
            if self._channels_path is None:
                channels = ",".join(quote(channel, safe="") for channel in self._members)
                self._channels_path = f"{self._prefix}{channels}/0"
            path = self._channels_path
            tt, tr = self._tt, self._tr
            # A joiner's cursor may lie before the group's: poll again from there, and
            # every member drops what it already has.
            rewind = min((member.last for member in self._pending), default=tt)
        if rewind < tt:
            tt, tr = rewind, None
        return self._target_from(path, tt, tr)

    def _hand_over(self, message: dict[str, Any], timetoken: int | None) -> None:
        channel = message.get("c")
        with self._lock:
            if isinstance(channel, str):
                # A channel that left meanwhile (still named by the poll) reaches no one.
                members = self._members.get(channel)
            elif len(self._members) == 1:
                members = next(iter(self._members.values()))  # an envelope without ``c``
            else:
                members = None
            members = list(members or ())
            alone = len(self._members) == 1 and len(members) == 1
        publisher = message.get("i")
        args = (message.get("d"), timetoken, message.get("u"))
        who = publisher if isinstance(publisher, str) else None
        for member in members:
            if member.stopped:
                continue
            if timetoken is not None:
                if timetoken <= member.last:
                    continue  # delivered before a rewound poll, or before its cursor
                member.last = timetoken
            job = functools.partial(member.sink.message, *args, who)
            member.hand(job, self._loop.submit, stopped_too=False, alone=alone)

    def _delivered(self, next_tt: int, next_tr: int) -> None:
        with self._lock:
            self._tt, self._tr = next_tt, next_tr
            sent = self._sent_version
            self._pending = [member for member in self._pending if member.joined > sent]

    def _refused(self, body: bytes) -> float | None:
        """A 403: the group's token does not read the channels it names (all of them when
        it names none: an expired or revoked token). Their members holding that token are
        denied; the others poll elsewhere with their own, and the rest keep polling here."""
        named = _denied_channels(body)
        with self._lock:
            refused_token = self._token
            # Named channels that left meanwhile deny no one: the next poll omits them.
            hit = named & self._members.keys() if named else set(self._members)
            self._refused_channels |= hit if named else set()
            refused = [m for channel in hit for m in self._members[channel]]
            for member in refused:
                self._remove(member)
            ended = not self._members
            if ended:
                self._stopped.set()
        alone = ended and len(refused) == 1  # no one else to hold up: deny on this thread
        for member in refused:
            if member.stopped or (member.token != refused_token and member.rejoin()):
                continue
            member.hand(member.refuse, self._loop.submit, stopped_too=False, alone=alone)
        return None if ended or self._stopped.is_set() else 0.0

    def _members_now(self) -> list[SubscriptionMember]:
        with self._lock:
            return [member for members in self._members.values() for member in members]

    def _connected(self, reconnected: bool) -> None:
        for member in self._members_now():
            if member.sink.connected is not None and not member.stopped:
                member.sink.connected(reconnected)

    def _failed(self, why: PollFailure, description: str) -> None:
        for member in self._members_now():
            if member.sink.failed is not None and not member.stopped:
                member.sink.failed(why, description)

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
            self.deadline = time.monotonic() + conn.timeout
            parked = not self._stopped.is_set() and sock is not None and self._park(sock)
            behind = self._take_back_if_behind() if parked else None
        if not parked:
            self._discard()  # stopped while sending (the poll goes unread), or loop closed
        elif behind is not None:
            self._interrupt(behind)

    def _interrupted(self) -> None:
        """The loop took the waiting poll back (members joined): send one that has them."""
        with self._lock:
            conn, self._conn, self._state = self._conn, None, _State.IDLE
        if conn is not None:
            self._connections.discard(conn)
        self._send()

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
                parked = not self._stopped.is_set() and self._park(sock)
                behind = self._take_back_if_behind() if parked else None
            if not parked:
                self._discard()
            elif behind is not None:
                self._interrupt(behind)
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

    def _park(self, sock: socket.socket) -> bool:
        """Under the lock: hand the sent poll to the loop to wait for (False: the loop
        closed). Under the lock, so a join that sees it waiting takes it back after the
        loop has it."""
        try:
            self._loop.watch(self, sock)
        except ClosedError:
            return False
        self._state = _State.WAITING
        return True

    def _take_back_if_behind(self) -> PlainConnection | None:
        """Under the lock, once parked: members joined while the poll was sent or read."""
        return self._take_back_waiting() if self._version != self._sent_version else None

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


def _never(*_: object) -> None:
    raise AssertionError("a group's messages go to its members' sinks")


def _denied_channels(body: bytes) -> set[str]:
    """The channels a 403 body's ``payload.channels`` names (none for a token error)."""
    try:
        channels = json.loads(body)["payload"]["channels"]
    except (ValueError, TypeError, KeyError):
        return set()
    return {c for c in channels if isinstance(c, str)} if isinstance(channels, list) else set()
