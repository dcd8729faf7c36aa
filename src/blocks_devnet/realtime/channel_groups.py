"""Channel groups (PubNub's channel registry): named sets of channels one subscribe can follow.

A subscribe names groups with ``channel-group=g1,g2`` (``g-pnpres`` for the presence channels of
its members) and gets every member's messages, each envelope's ``b`` naming the group it came
through (routes: ``channel_group_routes``). Memberships live in SQLite; the groups in use are
cached in memory (bounded, LRU).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

from blocks_devnet.realtime.errors import RealtimeError, bad_request
from blocks_devnet.store.database import Database

logger = logging.getLogger(__name__)

SERVICE = "channel-registry"
#: Channels one group may hold (PubNub's documented limit).
MAX_CHANNELS_PER_GROUP = 2000
#: Groups one subscribe may name (PubNub's documented limit).
MAX_GROUPS_PER_SUBSCRIBE = 10
#: Longest group name accepted (PubNub's documented limit).
MAX_GROUP_NAME_LENGTH = 92
#: Groups whose members are kept in memory; others are read from SQLite when next used.
CACHED_GROUPS = 4096
PRESENCE_SUFFIX = "-pnpres"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channel_groups (
    subscribe_key TEXT NOT NULL,
    grp TEXT NOT NULL,
    channel TEXT NOT NULL,
    PRIMARY KEY (subscribe_key, grp, channel)
) WITHOUT ROWID;
"""


class ChannelGroups:
    """Group memberships per keyset, persisted; the hot ones cached."""

    def __init__(self, db: Database, *, cached_groups: int = CACHED_GROUPS) -> None:
        self._db = db
        self._cached_groups = cached_groups
        self._cache: OrderedDict[tuple[str, str], tuple[str, ...]] = OrderedDict()
        db.ensure_schema(_SCHEMA)

    def channels(self, subscribe_key: str, group: str) -> tuple[str, ...]:
        """The group's channels, sorted (empty for an unknown group)."""
        key = (subscribe_key, group)
        members = self._cache.get(key)
        if members is None:
            rows = self._db.query(
                "SELECT channel FROM channel_groups WHERE subscribe_key = ? AND grp = ?",
                (subscribe_key, group),
            )
            members = tuple(sorted(row["channel"] for row in rows))
            self._remember(key, members)
        else:
            self._cache.move_to_end(key)
        return members

    def add(self, subscribe_key: str, group: str, channels: Iterable[str]) -> None:
        """Add ``channels``; raises a 400 when the group would pass its size limit."""
        current = self.channels(subscribe_key, group)
        merged = sorted(set(current).union(channels))
        if len(merged) > MAX_CHANNELS_PER_GROUP:
            raise registry_error(
                400,
                f"Channel group {group!r} would hold {len(merged)} channels; the limit is "
                f"{MAX_CHANNELS_PER_GROUP}. Split the channels over several groups",
            )
        new = [name for name in merged if name not in set(current)]
        if new:
            self._db.executemany(
                "INSERT OR IGNORE INTO channel_groups (subscribe_key, grp, channel) "
                "VALUES (?, ?, ?)",
                [(subscribe_key, group, name) for name in new],
            )
        self._remember((subscribe_key, group), tuple(merged))

    def remove(self, subscribe_key: str, group: str, channels: Iterable[str]) -> None:
        """Remove ``channels`` from the group (names it does not hold are ignored)."""
        gone = set(channels)
        self._db.executemany(
            "DELETE FROM channel_groups WHERE subscribe_key = ? AND grp = ? AND channel = ?",
            [(subscribe_key, group, name) for name in sorted(gone)],
        )
        kept = tuple(name for name in self.channels(subscribe_key, group) if name not in gone)
        self._remember((subscribe_key, group), kept)

    def delete(self, subscribe_key: str, group: str) -> None:
        """Delete the group and its memberships."""
        self._db.execute(
            "DELETE FROM channel_groups WHERE subscribe_key = ? AND grp = ?", (subscribe_key, group)
        )
        self._remember((subscribe_key, group), ())

    def expand(self, subscribe_key: str, groups: Iterable[str]) -> tuple[list[str], dict[str, str]]:
        """The channels a subscribe to ``groups`` follows, and for each the group it matched.

        ``g-pnpres`` stands for the presence channels of g's members. A channel in several
        groups is matched by the first one named.
        """
        channels: list[str] = []
        matched: dict[str, str] = {}
        for group in groups:
            presence = group.endswith(PRESENCE_SUFFIX)
            name = group[: -len(PRESENCE_SUFFIX)] if presence else group
            for member in self.channels(subscribe_key, name):
                channel = member + PRESENCE_SUFFIX if presence else member
                if channel not in matched:
                    matched[channel] = group
                    channels.append(channel)
        return channels, matched

    def _remember(self, key: tuple[str, str], members: tuple[str, ...]) -> None:
        self._cache[key] = members
        self._cache.move_to_end(key)
        while len(self._cache) > self._cached_groups:
            self._cache.popitem(last=False)


def parse_group_list(raw: str | None) -> list[str]:
    """The ``channel-group=`` query value: comma-joined names, at most
    :data:`MAX_GROUPS_PER_SUBSCRIBE` (a 400 beyond, as PubNub refuses)."""
    if not raw:
        return []
    names = [name for name in raw.split(",") if name]
    if len(names) > MAX_GROUPS_PER_SUBSCRIBE:
        raise bad_request(
            f"Invalid channel-group: {len(names)} given, at most {MAX_GROUPS_PER_SUBSCRIBE} per "
            "subscribe; put the channels in fewer groups"
        )
    for name in names:
        validate_group(name)
    return names


def validate_group(name: str) -> None:
    bare = name[: -len(PRESENCE_SUFFIX)] if name.endswith(PRESENCE_SUFFIX) else name
    if not bare or len(bare) > MAX_GROUP_NAME_LENGTH or "," in bare or ":" in bare:
        raise registry_error(
            400,
            f"Invalid channel group name {name[:64]!r}: 1..{MAX_GROUP_NAME_LENGTH} characters, "
            "without ',' or ':'",
        )


def registry_error(status: int, message: str) -> RealtimeError:
    return RealtimeError(
        status, {"status": status, "message": message, "error": True, "service": SERVICE}
    )
