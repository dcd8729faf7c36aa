"""Which sessions share one subscribe long-poll: grouping by what their tokens read.

A subscribe request carries one ``auth`` token (pubnub-wire.md §3), so sessions can share
a multi-channel poll only when one token reads all their channels. Each session's token
is read (not verified: :mod:`blocks_network.protocol.token_scope`) and the session joins
the first group of its keyset whose token reads its channel (or whose channels its own
token reads: it then becomes the group's token), while the poll's request target stays
under :data:`MAX_TARGET_BYTES` and names at most :data:`MAX_POLL_CHANNELS`. A token that cannot be read, or one bound to another
user id, polls alone: a group of one, on the same code path.
"""

from __future__ import annotations

import threading
from typing import Final

from blocks_network.protocol.token_scope import TokenScope, parse_token_scope
from blocks_network.transport.poll_loop import MultiplexedSubscription, PollLoop, SubscriptionMember
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import PollConnections, SubscriptionSink

__all__ = ["MAX_POLL_CHANNELS", "MAX_TARGET_BYTES", "TOKEN_MARGIN_S", "PollGroups"]

#: Longest request target (path and query) of one poll. The real service refuses GET
#: requests over ~32 KiB of URL (PubNub "API limits"); the rest is left for the origin.
MAX_TARGET_BYTES: Final = 30_000
#: Most channels one poll names: the local realtime server refuses more per request (the
#: real service documents only the URL's length; task channels reach that first).
MAX_POLL_CHANNELS: Final = 2000
#: A token this close to its expiry takes no new members (sessions refresh at 80 % TTL).
TOKEN_MARGIN_S: Final = 60.0


class PollGroups:
    """The poll groups of one client's sessions, on every keyset; thread-safe."""

    def __init__(
        self,
        endpoint: RealtimeEndpoint,
        user_id: str,
        loop: PollLoop,
        connections: PollConnections,
        max_target_bytes: int | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._user_id = user_id
        self._loop = loop
        self._connections = connections
        self._max_target_bytes = MAX_TARGET_BYTES if max_target_bytes is None else max_target_bytes
        self._lock = threading.Lock()
        self._groups: dict[str, list[MultiplexedSubscription]] = {}

    def subscription(
        self,
        subscribe_key: str,
        channel: str,
        token: str | None,
        cursor: int,
        sink: SubscriptionSink,
    ) -> SubscriptionMember:
        """A subscription to ``channel`` after timetoken ``cursor``, not started yet: its
        ``start()`` joins (or starts) a group's poll (ClosedError once closed)."""
        return SubscriptionMember(
            channel,
            token,
            cursor,
            sink,
            scope_of=self._scope,
            place=lambda member: self._place(subscribe_key, member),
        )

    @property
    def channel_counts(self) -> list[int]:
        """How many channels each group that shares its poll follows (tests, benchmarks;
        sessions polling alone with an unreadable token are not listed)."""
        with self._lock:
            groups = [g for key in self._groups.values() for g in key if not g.stopped]
        return [len(group.channels) for group in groups]

    def _scope(self, token: str | None) -> TokenScope | None:
        scope = parse_token_scope(token)
        if scope is not None and scope.authorized_uuid not in (None, self._user_id):
            return None  # the server refuses it for this client's user id anyway
        return scope

    def _place(self, subscribe_key: str, member: SubscriptionMember) -> None:
        if member.stopped:
            return
        with self._lock:
            groups = [g for g in self._groups.get(subscribe_key, ()) if not g.stopped]
            self._groups[subscribe_key] = groups
            for group in groups:
                if group.admit(
                    member,
                    max_target_bytes=self._max_target_bytes,
                    max_channels=MAX_POLL_CHANNELS,
                    margin_s=TOKEN_MARGIN_S,
                ):
                    return
            group = MultiplexedSubscription(
                endpoint=self._endpoint,
                subscribe_key=subscribe_key,
                channel=member.channel,
                token=member.token,
                user_id=self._user_id,
                cursor=member.last,
                sink=member.sink,
                loop=self._loop,
                connections=self._connections,
                member=member,
            )
            group.start()  # ClosedError: the client closed, nothing is kept
            if member.scope is not None:
                groups.append(group)
        if member.stopped:  # stop() raced the start and saw no group yet
            group.leave(member)
