"""Message persistence routes (pubnub-wire.md §5): history v2, fetch v3, delete, counts.

Every route reads the ``messages`` table: only rows published with ``store=1`` whose
``expires_at`` (a timetoken, set by ``ttl``) has not passed. Signals and presence events
are never stored, so they never appear.

Time ranges follow PubNub's documented rule for every route: ``start`` is exclusive,
``end`` is inclusive, and when both are given the range lies between them whichever is
larger (so ``start=T+1&end=T`` selects exactly ``T``). Pages hold the newest matching
messages (the oldest with ``reverse=true`` on v2), listed oldest first, so paging
newest-first with ``start`` = the oldest timetoken of a page never skips or repeats one.

Parameter policy: a value that is not a plain integer (or a timetoken outside
``0..MAX_TIMETOKEN``) is a 400; an integer ``count``/``max`` outside its range is
clamped the way the real service and the official client clamp it (below 1 → the
default, above the cap → the cap). fetch items carry ``message`` and ``timetoken``; ``uuid``,
``message_type``, ``meta`` and ``custom_message_type`` only when asked for (``include_*=true``),
and ``actions`` never (none are stored; the real service omits it from items without any), as
the official client's recorded fetches show. Channels with no messages are left out of ``channels``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from blocks_devnet.realtime.access import DELETE, READ
from blocks_devnet.realtime.errors import bad_request, not_found
from blocks_devnet.realtime.http import (
    RealtimeRequest,
    build_request,
    decode_channel_list,
    decode_segment,
    json_response,
    raw_segments,
    validate_channel,
)
from blocks_devnet.realtime.message_log import MESSAGE, SIGNAL
from blocks_devnet.realtime.service import RealtimeService, service_of
from blocks_devnet.realtime.timetoken import now_timetoken
from blocks_devnet.store.database import Database

logger = logging.getLogger(__name__)

#: Most messages one history v2 call returns (and its default).
MAX_HISTORY_COUNT = 100
#: fetch_messages caps: one channel, several channels, and the with-actions form.
MAX_FETCH_SINGLE = 100
MAX_FETCH_MULTI = 25
MAX_FETCH_WITH_ACTIONS = 25
#: Most channels one fetch_messages call may name (PubNub's documented limit).
MAX_FETCH_CHANNELS = 500
#: Most channels one message_counts call may name, and the largest count it reports.
MAX_COUNT_CHANNELS = 100
MAX_REPORTED_COUNT = 10_000
#: Largest timetoken accepted; keeps ``end + 1`` inside SQLite's signed 64-bit integers.
MAX_TIMETOKEN = 2**62

# ASCII digits only: ``int()`` would also take "1_000", " 7" and non-ASCII digits.
_TIMETOKEN_RE = re.compile(r"[0-9]{1,19}")
_INT_RE = re.compile(r"-?[0-9]{1,19}")

_COLUMNS = "timetoken, publisher, message, meta, message_type, custom_message_type"
_VISIBLE = "subscribe_key=? AND channel=? AND stored=1 AND message_type != ?"
_NOT_EXPIRED = "(expires_at IS NULL OR expires_at > ?)"


@dataclass(frozen=True)
class TimeSpan:
    """Timetokens ``tt`` with ``low <= tt < high``; ``None`` leaves that side open."""

    low: int | None = None
    high: int | None = None

    @classmethod
    def between(cls, start: int | None, end: int | None) -> TimeSpan:
        """PubNub's range: ``start`` exclusive, ``end`` inclusive, in either order."""
        if start is None and end is None:
            return cls()
        if start is None:
            return cls(low=end)
        if end is None:
            return cls(high=start)
        if start >= end:
            return cls(low=end, high=start)
        return cls(low=start + 1, high=end + 1)

    def sql(self) -> tuple[str, list[int]]:
        """An ``AND ...`` clause on ``timetoken`` and its parameters."""
        clause, params = "", []
        if self.low is not None:
            clause += " AND timetoken >= ?"
            params.append(self.low)
        if self.high is not None:
            clause += " AND timetoken < ?"
            params.append(self.high)
        return clause, params


@dataclass(frozen=True, slots=True)
class StoredMessage:
    timetoken: int
    publisher: str
    message: Any
    meta: Any
    message_type: int
    custom_message_type: str | None


def select_messages(
    db: Database,
    subscribe_key: str,
    channel: str,
    span: TimeSpan,
    *,
    limit: int,
    oldest_first: bool = False,
    now: int | None = None,
) -> list[StoredMessage]:
    """Up to ``limit`` stored, unexpired messages in ``span``, listed oldest first.

    Picks the newest ``limit`` in the span, or the oldest with ``oldest_first``.
    """
    clause, params = span.sql()
    order = "ASC" if oldest_first else "DESC"
    rows = db.query(
        f"SELECT {_COLUMNS} FROM messages WHERE {_VISIBLE} AND {_NOT_EXPIRED}{clause}"
        f" ORDER BY timetoken {order} LIMIT ?",
        (subscribe_key, channel, SIGNAL, _now(now), *params, limit),
    )
    found = [
        StoredMessage(
            timetoken=row["timetoken"],
            publisher=row["publisher"],
            message=json.loads(row["message"]),
            meta=json.loads(row["meta"]) if row["meta"] else None,
            message_type=row["message_type"],
            custom_message_type=row["custom_message_type"],
        )
        for row in rows
    ]
    if not oldest_first:
        found.reverse()
    return found


def delete_messages(db: Database, subscribe_key: str, channel: str, span: TimeSpan) -> int:
    """Delete the stored messages in ``span``; returns how many rows went."""
    clause, params = span.sql()
    cursor = db.execute(
        f"DELETE FROM messages WHERE {_VISIBLE}{clause}",
        (subscribe_key, channel, SIGNAL, *params),
    )
    return cursor.rowcount


def count_messages_after(
    db: Database, subscribe_key: str, channel: str, after: int, *, now: int | None = None
) -> int:
    """Stored, unexpired messages with a timetoken above ``after`` (capped like PubNub)."""
    row = db.query_one(
        f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM messages WHERE {_VISIBLE} AND {_NOT_EXPIRED}"
        " AND timetoken > ? LIMIT ?)",
        (subscribe_key, channel, SIGNAL, _now(now), after, MAX_REPORTED_COUNT),
    )
    return int(row["n"]) if row is not None else 0


def _now(now: int | None) -> int:
    return now_timetoken() if now is None else now


# --- parameters ------------------------------------------------------------------------


def timetoken_param(req: RealtimeRequest, name: str) -> int | None:
    """A timetoken query parameter, ``None`` when absent; anything else malformed is a 400."""
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    return _parse_timetoken(name, raw)


def _parse_timetoken(name: str, raw: str) -> int:
    if not _TIMETOKEN_RE.fullmatch(raw) or int(raw) > MAX_TIMETOKEN:
        raise bad_request(f"Invalid {name}: {raw[:32]!r} is not a timetoken (an integer >= 0)")
    return int(raw)


def limit_param(req: RealtimeRequest, name: str, *, default: int, cap: int) -> int:
    """``count``/``max``: a non-integer is a 400; out-of-range integers are clamped."""
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    if not _INT_RE.fullmatch(raw):
        raise bad_request(f"Invalid {name}: {raw[:32]!r} is not an integer")
    value = int(raw)
    if value < 1:
        return default
    return min(value, cap)


def _flag(req: RealtimeRequest, name: str, *, default: bool) -> bool:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    return raw.lower() in ("1", "true")


def _request(request: web.Request, kind: str) -> tuple[RealtimeService, RealtimeRequest, str]:
    """Resolve ``/{v}/{history}/sub-key/{sub}/{kind}/{tail}``; returns the raw tail."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=3)
    segments = req.segments
    if len(segments) != 6 or segments[2] != "sub-key" or segments[4] != kind:
        raise not_found(f"Unknown persistence path; expected /.../sub-key/{{sub}}/{kind}/{{name}}")
    service.access.verify_signature(req, b"")
    return service, req, segments[5]


def _channels(tail: str, *, maximum: int) -> list[str]:
    channels = list(dict.fromkeys(decode_channel_list(tail)))
    if not channels:
        raise bad_request("Invalid channels: name at least one channel")
    if len(channels) > maximum:
        raise bad_request(f"Too many channels: at most {maximum} per call")
    return channels


# --- routes ----------------------------------------------------------------------------


async def handle_history(request: web.Request) -> web.Response:
    """``GET /v2/history/sub-key/{sub}/channel/{ch}`` → ``[[items], first_tt, last_tt]``."""
    service, req, tail = _request(request, "channel")
    channel = decode_segment(tail)
    validate_channel(channel)
    span = TimeSpan.between(timetoken_param(req, "start"), timetoken_param(req, "end"))
    count = limit_param(req, "count", default=MAX_HISTORY_COUNT, cap=MAX_HISTORY_COUNT)
    include_token = req.flag("include_token")
    include_meta = req.flag("include_meta")
    service.access.require(req, channels=[channel], permission=READ)

    found = select_messages(
        service.db,
        req.keyset.subscribe_key,
        channel,
        span,
        limit=count,
        oldest_first=req.flag("reverse"),
    )
    if not found:
        return json_response([[], 0, 0])
    items: list[Any] = []
    for stored in found:
        if not (include_token or include_meta):
            items.append(stored.message)
            continue
        item: dict[str, Any] = {"message": stored.message}
        if include_token:
            item["timetoken"] = stored.timetoken
        if include_meta and stored.meta is not None:
            item["meta"] = stored.meta
        items.append(item)
    return json_response([items, found[0].timetoken, found[-1].timetoken])


async def handle_fetch_with_actions(request: web.Request) -> web.Response:
    """``GET /v3/history-with-actions/sub-key/{sub}/channel/{ch}``: one channel, ``more``."""
    return _fetch(request, with_actions=True)


async def handle_v3_get(request: web.Request) -> web.Response:
    """``GET /v3/history/sub-key/{sub}/channel/{chs}`` (fetch, one or many channels) and
    ``GET /v3/history/sub-key/{sub}/message-counts/{chs}`` share one prefix."""
    segments = raw_segments(request)
    if len(segments) > 4 and segments[4] == "message-counts":
        return _message_counts(request)
    return _fetch(request, with_actions=False)


def _fetch(request: web.Request, *, with_actions: bool) -> web.Response:
    service, req, tail = _request(request, "channel")
    if with_actions:
        channels = _channels(tail, maximum=1)
        cap = default = MAX_FETCH_WITH_ACTIONS
    else:
        channels = _channels(tail, maximum=MAX_FETCH_CHANNELS)
        cap = default = MAX_FETCH_SINGLE if len(channels) == 1 else MAX_FETCH_MULTI
    start, end = timetoken_param(req, "start"), timetoken_param(req, "end")
    span = TimeSpan.between(start, end)
    limit = limit_param(req, "max", default=default, cap=cap)
    shape = _ItemShape(
        uuid=_flag(req, "include_uuid", default=False),
        message_type=_flag(req, "include_message_type", default=False),
        custom_message_type=_flag(req, "include_custom_message_type", default=False),
        meta=_flag(req, "include_meta", default=False),
    )
    service.access.require(req, channels=channels, permission=READ)

    subscribe_key = req.keyset.subscribe_key
    body: dict[str, Any] = {"status": 200, "channels": {}, "error_message": "", "error": False}
    for channel in channels:
        # One extra row tells whether an older page exists (the with-actions ``more``).
        found = select_messages(service.db, subscribe_key, channel, span, limit=limit + 1)
        more = len(found) > limit
        if more:
            found = found[1:]
        if found:
            body["channels"][channel] = [shape.render(stored) for stored in found]
        if with_actions and more:
            body["more"] = _more(subscribe_key, channel, found[0].timetoken, end, limit)
    return json_response(body)


@dataclass(frozen=True)
class _ItemShape:
    uuid: bool
    message_type: bool
    custom_message_type: bool
    meta: bool

    def render(self, stored: StoredMessage) -> dict[str, Any]:
        item: dict[str, Any] = {"message": stored.message, "timetoken": str(stored.timetoken)}
        if self.uuid:
            item["uuid"] = stored.publisher
        if self.message_type:
            # Normal messages report null, files 4 (what the real service answers).
            item["message_type"] = None if stored.message_type == MESSAGE else stored.message_type
        if self.custom_message_type and stored.custom_message_type:
            item["custom_message_type"] = stored.custom_message_type
        if self.meta and stored.meta is not None:
            item["meta"] = stored.meta
        # No message actions are stored here, so ``actions`` never appears: the real service
        # leaves it out of items that have none (the client's recorded with-actions fetches).
        return item


def _more(
    subscribe_key: str, channel: str, oldest: int, end: int | None, limit: int
) -> dict[str, Any]:
    query = f"start={oldest}&max={limit}" + (f"&end={end}" if end is not None else "")
    url = (
        f"/v3/history-with-actions/sub-key/{quote(subscribe_key, safe='')}"
        f"/channel/{quote(channel, safe='')}?{query}"
    )
    return {"url": url, "start": str(oldest), "max": limit}


async def handle_delete(request: web.Request) -> web.Response:
    """``DELETE /v3/history/sub-key/{sub}/channel/{ch}[?start&end]`` (delete permission)."""
    service, req, tail = _request(request, "channel")
    channels = _channels(tail, maximum=MAX_FETCH_CHANNELS)
    span = TimeSpan.between(timetoken_param(req, "start"), timetoken_param(req, "end"))
    service.access.require(req, channels=channels, permission=DELETE)
    # Queued rows go in first, outside the unit: a failed delete must not roll them back.
    service.db.flush_queued()
    with service.db.transaction():
        removed = sum(
            delete_messages(service.db, req.keyset.subscribe_key, channel, span)
            for channel in channels
        )
    logger.debug("deleted %d stored messages from %s", removed, channels)
    return json_response({"status": 200, "error": False, "error_message": ""})


def _message_counts(request: web.Request) -> web.Response:
    """``GET /v3/history/sub-key/{sub}/message-counts/{chs}?timetoken=|channelsTimetoken=``."""
    service, req, tail = _request(request, "message-counts")
    channels = _channels(tail, maximum=MAX_COUNT_CHANNELS)
    after = _count_timetokens(req, channels)
    service.access.require(req, channels=channels, permission=READ)
    now = now_timetoken()
    counts = {
        channel: count_messages_after(service.db, req.keyset.subscribe_key, channel, tt, now=now)
        for channel, tt in zip(channels, after, strict=True)
    }
    return json_response({"status": 200, "error": False, "error_message": "", "channels": counts})


def _count_timetokens(req: RealtimeRequest, channels: list[str]) -> list[int]:
    single = req.query.get("timetoken", "")
    listed = req.query.get("channelsTimetoken", "")
    if single and listed:
        raise bad_request("Pass either timetoken or channelsTimetoken, not both")
    if single:
        return [_parse_timetoken("timetoken", single)] * len(channels)
    if not listed:
        raise bad_request("Missing timetoken: pass timetoken or channelsTimetoken")
    values = [_parse_timetoken("channelsTimetoken", raw) for raw in listed.split(",")]
    if len(values) == 1:
        return values * len(channels)
    if len(values) != len(channels):
        raise bad_request(
            f"channelsTimetoken has {len(values)} timetokens for {len(channels)} channels;"
            " pass one per channel, or one for all"
        )
    return values


def add_routes(router: web.UrlDispatcher) -> None:
    """Register history v2, fetch v3 (with and without actions), delete and counts."""
    router.add_get("/v2/history/{tail:.+}", handle_history)
    router.add_get("/v3/history/{tail:.+}", handle_v3_get)
    router.add_route("DELETE", "/v3/history/{tail:.+}", handle_delete)
    router.add_get("/v3/history-with-actions/{tail:.+}", handle_fetch_with_actions)
