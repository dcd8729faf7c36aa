"""Presence: who is on which channel, and the events that announce changes (pubnub-wire.md §4).

A uuid is *present* on a channel from its first subscribe or heartbeat there until it
leaves or times out. It times out when, for its heartbeat value (``heartbeat=``, default
300 s), it has held no subscribe long-poll and sent no heartbeat. A held poll is a connected
client, so the clock only runs between polls. Overlapping polls from one uuid are normal
(the client never aborts an old poll), so each membership counts its polls.

Every change is published on ``{channel}-pnpres`` as ``{"action","uuid","timestamp",
"occupancy"}`` (``"data"`` added for ``state-change``); the client asserts those types.

A held poll also ends when its client's connection closes (both the fast path and
aiohttp cancel the request), so :meth:`PresenceTracker.poll_gap` tells a killed subscriber
within seconds, long before its presence times out; the task service reads it.

Presence lives in memory only: a restart forgets who was present. Clients announce
themselves again with their next subscribe or heartbeat (a fresh ``join``).
All methods run on the server's event loop; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from blocks_devnet.realtime.errors import bad_request
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.message_log import MessageLog

logger = logging.getLogger(__name__)

PRESENCE_SUFFIX = "-pnpres"
#: The client's and the hosted service's default presence timeout.
DEFAULT_HEARTBEAT_SECONDS = 300
#: The hosted service refuses less than 20 s; the local network allows short values so
#: tests can watch a timeout happen, but not so short that the gap between two polls
#: of a healthy client could count as silence.
MIN_HEARTBEAT_SECONDS = 2
DEFAULT_SWEEP_INTERVAL_SECONDS = 1.0
#: States of uuids that are not present (set and never joined) kept at most: the oldest
#: go first. A present uuid's state goes when it leaves or times out.
MAX_ABSENT_STATES = 65_536

JOIN = "join"
LEAVE = "leave"
TIMEOUT = "timeout"
STATE_CHANGE = "state-change"

State = dict[str, Any]


class _Member:
    """One uuid on one channel of one keyset."""

    __slots__ = (
        "channel",
        "deadline",
        "idle_since",
        "polls",
        "removed",
        "scheduled_at",
        "subscribe_key",
        "timeout",
        "uuid",
    )

    def __init__(self, subscribe_key: str, channel: str, uuid: str, timeout: int) -> None:
        self.subscribe_key = subscribe_key
        self.channel = channel
        self.uuid = uuid
        self.timeout = timeout
        #: Subscribe polls in flight; while positive the member cannot time out.
        self.polls = 0
        #: Monotonic time after which an idle member times out.
        self.deadline = 0.0
        #: Deadline of this member's entry in the sweep heap, if it has one.
        self.scheduled_at: float | None = None
        #: Set on leave/timeout so a stale poll's finish cannot revive the membership.
        self.removed = False
        #: Monotonic time the member's last subscribe poll ended (a killed subscriber's
        #: connection closes, cancelling its held poll); None while one is held, or if it
        #: never subscribed (heartbeats only).
        self.idle_since: float | None = None


class PollHandle:
    """What :meth:`PresenceTracker.subscribe_started` hands back for ``subscribe_finished``."""

    __slots__ = ("members",)

    def __init__(self, members: list[_Member]) -> None:
        self.members = members


class PresenceTracker:
    """Who is subscribed where; emits join/leave/timeout/state-change events.

    ``clock`` (monotonic seconds) is injectable so unit tests can drive timeouts with
    :meth:`sweep` instead of waiting; :meth:`run` sweeps every ``sweep_interval`` seconds.
    """

    def __init__(
        self,
        messages: MessageLog,
        *,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._messages = messages
        self._sweep_interval = sweep_interval
        self._clock = clock
        #: subscribe_key → channel → uuid → member.
        self._members: dict[str, dict[str, dict[str, _Member]]] = {}
        #: (subscribe_key, uuid) → channels it is present on (for where_now).
        self._where: dict[tuple[str, str], set[str]] = {}
        #: (subscribe_key, channel, uuid) → state; kept until the uuid leaves or times out.
        self._states: dict[tuple[str, str, str], State] = {}
        #: (deadline, sequence, member): at most one live entry per member.
        self._heap: list[tuple[float, int, _Member]] = []
        self._sequence = itertools.count()
        #: Events waiting for the loop's next turn: (subscribe_key, channel, uuid, payload).
        self._outbox: list[tuple[str, str, str, dict[str, Any]]] = []
        self._closed = False

    # --- subscribe hooks -----------------------------------------------------------------

    def subscribe_started(
        self, keyset: Keyset, uuid: str, channels: list[str], heartbeat: int | None, state: Any
    ) -> PollHandle:
        """A subscribe poll began: a heartbeat on ``channels`` that lasts until it finishes.

        ``state`` is the optional ``{channel: {...}}`` a subscribe may carry. Raises a 400
        :class:`RealtimeError` for malformed state before changing anything. Every call
        must be paired with one :meth:`subscribe_finished` of the returned handle.
        """
        states = parse_channel_states(state, channels)
        if not uuid:
            return PollHandle([])
        members = []
        for channel in channels:
            member = self._touch(keyset.subscribe_key, channel, uuid, heartbeat)
            member.polls += 1
            member.idle_since = None
            members.append(member)
            if channel in states:
                self._change_state(
                    member.subscribe_key, channel, uuid, states[channel], only_if_new=True
                )
        return PollHandle(members)

    def subscribe_finished(self, handle: object) -> None:
        """The poll ended (answered, timed out or cancelled): the timeout clock restarts."""
        if not isinstance(handle, PollHandle):
            return
        now = self._clock()
        for member in handle.members:
            member.polls -= 1
            if member.removed or member.polls > 0:
                continue
            member.idle_since = now
            member.deadline = now + member.timeout
            self._schedule(member)

    # --- REST operations -----------------------------------------------------------------

    def heartbeat(
        self,
        subscribe_key: str,
        uuid: str,
        channels: Iterable[str],
        heartbeat: int | None,
        states: dict[str, State] | None = None,
    ) -> None:
        """Mark ``uuid`` present on ``channels`` for its heartbeat value from now."""
        now = self._clock()
        for channel in channels:
            member = self._touch(subscribe_key, channel, uuid, heartbeat)
            member.deadline = now + member.timeout
            if member.polls == 0:
                self._schedule(member)
            if states and channel in states:
                self._change_state(subscribe_key, channel, uuid, states[channel], only_if_new=True)

    def leave(self, subscribe_key: str, uuid: str, channels: Iterable[str]) -> None:
        """Remove ``uuid`` from ``channels`` at once, even while one of its polls is held."""
        for channel in channels:
            member = self._members.get(subscribe_key, {}).get(channel, {}).get(uuid)
            if member is not None:
                self._remove(member, LEAVE)

    def set_state(
        self, subscribe_key: str, uuid: str, channels: Iterable[str], state: State
    ) -> None:
        """Replace ``uuid``'s state on ``channels`` (``{}`` clears it); always announced.

        Setting state does not make ``uuid`` present. State set while absent is kept (and
        read back by :meth:`get_state`) until the uuid joins and then leaves or times out.
        """
        for channel in channels:
            self._change_state(subscribe_key, channel, uuid, state, only_if_new=False)

    def get_state(self, subscribe_key: str, uuid: str, channel: str) -> State:
        """``uuid``'s state on ``channel`` (``{}`` when none was set)."""
        return dict(self._states.get((subscribe_key, channel, uuid), {}))

    def poll_gap(self, subscribe_key: str, channel: str, uuid: str) -> float | None:
        """Seconds since ``uuid`` last held a subscribe poll on ``channel``: 0.0 while it
        holds one, None if it is absent or only ever sent heartbeats.

        A live subscriber polls again at once after each answer, and a held poll ends
        when its connection closes (a killed process), so a gap of a few seconds tells
        a dead subscriber long before its presence times out.
        """
        member = self._members.get(subscribe_key, {}).get(channel, {}).get(uuid)
        if member is None:
            return None
        if member.polls > 0:
            return 0.0
        if member.idle_since is None:
            return None
        return max(0.0, self._clock() - member.idle_since)

    def occupants(self, subscribe_key: str, channel: str) -> list[str]:
        """The uuids present on ``channel``, sorted (so ``offset`` pages are stable)."""
        return sorted(self._members.get(subscribe_key, {}).get(channel, {}))

    def occupied_channels(self, subscribe_key: str) -> list[str]:
        """Every channel of the keyset with at least one uuid present, sorted."""
        return sorted(self._members.get(subscribe_key, {}))

    def where_now(self, subscribe_key: str, uuid: str) -> list[str]:
        """The channels ``uuid`` is present on, sorted."""
        return sorted(self._where.get((subscribe_key, uuid), ()))

    # --- timeouts ------------------------------------------------------------------------

    def sweep(self) -> int:
        """Time out every idle member past its deadline; returns how many timed out."""
        now = self._clock()
        timed_out = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, member = heapq.heappop(heap)
            if member.scheduled_at != at:
                continue  # superseded by an earlier deadline pushed later
            member.scheduled_at = None
            if member.removed or member.polls > 0:
                continue  # subscribe_finished schedules it again
            if member.deadline > now:
                self._schedule(member)
                continue
            self._remove(member, TIMEOUT)
            timed_out += 1
        return timed_out

    async def run(self) -> None:
        """Background sweeper (timeouts); runs until cancelled or closed."""
        while not self._closed:
            await asyncio.sleep(self._sweep_interval)
            try:
                self.sweep()
            except Exception:  # one bad sweep must not end timeouts for good
                logger.exception("presence sweep failed")

    def close(self) -> None:
        """Stop sweeping and announcing; safe to call twice (in-flight polls may still finish)."""
        self._closed = True

    # --- internals -----------------------------------------------------------------------

    def _touch(self, subscribe_key: str, channel: str, uuid: str, heartbeat: int | None) -> _Member:
        """The member for ``uuid`` on ``channel``, created (and announced) when absent."""
        by_channel = self._members.setdefault(subscribe_key, {})
        by_uuid = by_channel.setdefault(channel, {})
        member = by_uuid.get(uuid)
        if member is None:
            timeout = (
                clamp_heartbeat(heartbeat) if heartbeat is not None else DEFAULT_HEARTBEAT_SECONDS
            )
            member = _Member(subscribe_key, channel, uuid, timeout)
            member.deadline = self._clock() + timeout
            by_uuid[uuid] = member
            self._where.setdefault((subscribe_key, uuid), set()).add(channel)
            logger.debug("presence join %s on %s", uuid, channel)
            self._announce(subscribe_key, channel, uuid, JOIN, len(by_uuid))
        elif heartbeat is not None:
            member.timeout = clamp_heartbeat(heartbeat)
        return member

    def _remove(self, member: _Member, action: str) -> None:
        member.removed = True
        key = member.subscribe_key
        by_channel = self._members.get(key, {})
        by_uuid = by_channel.get(member.channel, {})
        by_uuid.pop(member.uuid, None)
        occupancy = len(by_uuid)
        if not by_uuid:
            by_channel.pop(member.channel, None)
            if not by_channel:
                self._members.pop(key, None)
        where = self._where.get((key, member.uuid))
        if where is not None:
            where.discard(member.channel)
            if not where:
                del self._where[(key, member.uuid)]
        self._states.pop((key, member.channel, member.uuid), None)
        logger.debug("presence %s %s on %s", action, member.uuid, member.channel)
        self._announce(key, member.channel, member.uuid, action, occupancy)

    def _change_state(
        self, subscribe_key: str, channel: str, uuid: str, state: State, *, only_if_new: bool
    ) -> None:
        key = (subscribe_key, channel, uuid)
        if only_if_new and self._states.get(key, {}) == state:
            return
        if state:
            states = self._states
            if key not in states and len(states) >= MAX_ABSENT_STATES:
                self._forget_absent_states(len(states) - MAX_ABSENT_STATES + 1)
            states[key] = dict(state)
        else:
            self._states.pop(key, None)
        occupancy = len(self._members.get(subscribe_key, {}).get(channel, {}))
        self._announce(subscribe_key, channel, uuid, STATE_CHANGE, occupancy, data=state)

    def _forget_absent_states(self, count: int) -> None:
        """Drop up to ``count`` of the oldest states whose uuid is not present."""
        absent = []
        for subscribe_key, channel, uuid in self._states:
            if uuid not in self._members.get(subscribe_key, {}).get(channel, {}):
                absent.append((subscribe_key, channel, uuid))
                if len(absent) >= count:
                    break
        for key in absent:
            del self._states[key]

    def _schedule(self, member: _Member) -> None:
        if member.scheduled_at is not None and member.scheduled_at <= member.deadline:
            return  # the earlier entry will look again at the current deadline
        member.scheduled_at = member.deadline
        heapq.heappush(self._heap, (member.deadline, next(self._sequence), member))

    def _announce(
        self,
        subscribe_key: str,
        channel: str,
        uuid: str,
        action: str,
        occupancy: int,
        *,
        data: State | None = None,
    ) -> None:
        if self._closed:
            return
        payload: dict[str, Any] = {
            "action": action,
            "uuid": uuid,
            "timestamp": int(time.time()),
            "occupancy": occupancy,
        }
        if data is not None:
            payload["data"] = data
        self._outbox.append((subscribe_key, channel + PRESENCE_SUFFIX, uuid, payload))
        if len(self._outbox) == 1:
            _call_soon(self.flush)

    def flush(self) -> None:
        """Publish the queued events, oldest first (normally run by the loop, see ``_call_soon``)."""
        outbox, self._outbox = self._outbox, []
        if self._closed:
            return
        for subscribe_key, channel, uuid, payload in outbox:
            try:
                self._messages.append(
                    subscribe_key=subscribe_key,
                    channel=channel,
                    publisher=uuid,
                    message=payload,
                    message_json=json.dumps(payload, separators=(",", ":")),
                    store=False,
                    presence=True,
                )
            except Exception:  # one lost event must not drop the ones queued behind it
                logger.exception("could not publish presence %s on %s", payload["action"], channel)


def _call_soon(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the loop's next turn, or at once when no loop runs (unit tests).

    Events go out after the current request: a first subscribe (``tt=0``) answers with
    the current cursor, and its own ``join`` must get a later timetoken than that cursor
    or the client would never receive it. The hosted service is asynchronous the same way.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        fn()
        return
    loop.call_soon(fn)


def clamp_heartbeat(seconds: int) -> int:
    """A requested presence timeout, raised to :data:`MIN_HEARTBEAT_SECONDS`."""
    return max(seconds, MIN_HEARTBEAT_SECONDS)


def parse_channel_states(state: Any, channels: Iterable[str]) -> dict[str, State]:
    """Validate a ``{channel: {...}}`` state parameter; entries for other channels are dropped.

    Raises a 400 :class:`RealtimeError` unless ``state`` is absent or an object of objects.
    """
    if state is None:
        return {}
    if not isinstance(state, dict):
        raise bad_request("Invalid state: expected a JSON object of {channel: {...}}", "Presence")
    wanted = set(channels)
    states: dict[str, State] = {}
    for channel, value in state.items():
        if not isinstance(value, dict):
            raise bad_request(
                f"Invalid state for channel {channel[:64]!r}: expected a JSON object", "Presence"
            )
        if channel in wanted:
            states[channel] = value
    return states


def add_routes(router: web.UrlDispatcher) -> None:
    """Presence REST routes (heartbeat, leave, state, here_now, where_now)."""
    # Imported here: the routes need the service module, which imports this one.
    from blocks_devnet.realtime import presence_routes

    presence_routes.add_routes(router)
