"""Subscribe v2 long-poll (pubnub-wire.md §3)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from aiohttp import web

from blocks_devnet.realtime.access import READ
from blocks_devnet.realtime.channel_groups import parse_group_list
from blocks_devnet.realtime.envelope import with_match
from blocks_devnet.realtime.errors import bad_request
from blocks_devnet.realtime.filter_expr import (
    CompiledFilter,
    FilterExpressionError,
    compile_filter,
)
from blocks_devnet.realtime.http import CORS_HEADERS, build_request, decode_channel_list
from blocks_devnet.realtime.message_log import LoggedMessage
from blocks_devnet.realtime.service import service_of

logger = logging.getLogger(__name__)

PRESENCE_SUFFIX = "-pnpres"
#: Longest ``heartbeat=`` presence timeout accepted, in seconds.
MAX_HEARTBEAT_SECONDS = 3600


def _response_body(cursor: int, messages: list[LoggedMessage]) -> str:
    envelopes = ",".join(m.envelope for m in messages)
    return f'{{"t":{{"t":"{cursor}","r":1}},"m":[{envelopes}]}}'


async def handle_subscribe(request: web.Request) -> web.Response:
    """``GET /v2/subscribe/{sub}/{chs}/0?tt=&tr=[&filter-expr][&heartbeat][&state]``."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=2)
    if len(req.segments) < 4:
        raise bad_request("Invalid path: expected /v2/subscribe/{sub}/{channels}/0")
    channels = decode_channel_list(req.segments[3])
    groups = parse_group_list(req.query.get("channel-group"))
    if not channels and not groups:
        raise bad_request("Invalid subscribe: at least one channel or channel group is required")
    service.access.verify_signature(req, b"")

    try:
        cursor = int(req.query.get("tt", "0") or "0")
    except ValueError:
        raise bad_request("Invalid timetoken: tt must be an integer") from None
    if cursor < 0:
        raise bad_request("Invalid timetoken: tt must not be negative")

    accept = None
    expression = req.query.get("filter-expr", "")
    if expression:
        try:
            compiled = compile_filter(expression)
        except FilterExpressionError as exc:
            raise bad_request(f"Invalid filter expression: {exc}") from None
        accept = _filter_accept(compiled)

    heartbeat: int | None = None
    if "heartbeat" in req.query:
        heartbeat = req.int_param("heartbeat", 300, low=0, high=MAX_HEARTBEAT_SECONDS)
    state = req.json_param("state")

    service.access.require(req, channels=channels, groups=groups, permission=READ)

    subscribe_key = req.keyset.subscribe_key
    matched: dict[str, str] = {}
    if groups:
        # Members are read at each poll: a channel added to a group is followed from the next.
        channels, matched = _with_group_members(
            channels, *service.channel_groups.expand(subscribe_key, groups)
        )
    data_channels = [c for c in channels if not c.endswith(PRESENCE_SUFFIX)]
    handle = service.presence.subscribe_started(
        req.keyset, req.uuid, data_channels, heartbeat, state
    )
    try:
        if cursor == 0:
            return _json(_response_body(service.messages.clock.head(), []))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + service.long_poll_seconds
        while True:
            messages, truncated = service.messages.collect(subscribe_key, channels, cursor, accept)
            if messages:
                next_cursor = messages[-1].timetoken if truncated else service.messages.clock.head()
                if groups:
                    return _json(_group_response_body(next_cursor, messages, matched))
                return _json(_response_body(next_cursor, messages))
            # Nothing deliverable up to now; no append can run between the collect above
            # and this line (one event loop), so filtered-out messages are skipped for good.
            cursor = service.messages.clock.head()
            remaining = deadline - loop.time()
            if remaining <= 0 or service.closing:
                return _json(_response_body(service.messages.clock.head(), []))
            waiter = service.messages.wait(subscribe_key, channels)
            # A timer on the waiter itself: wait_for would add a future, a task step and a
            # callback to every held poll.
            timer = loop.call_later(remaining, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                service.messages.forget_waiter(subscribe_key, channels, waiter)
    finally:
        # Also on cancellation: a client whose connection closed while the poll was held
        # (a killed process) stops polling from here (PresenceTracker.poll_gap).
        service.presence.subscribe_finished(handle)


def _with_group_members(
    channels: list[str], members: list[str], matched: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Channels named directly plus group members; ``matched`` keeps only the members that
    came through a group alone (a direct subscription wins the envelope's ``b``)."""
    direct = set(channels)
    extra = [channel for channel in members if channel not in direct]
    return channels + extra, {channel: matched[channel] for channel in extra}


def _group_response_body(
    cursor: int, messages: list[LoggedMessage], matched: dict[str, str]
) -> str:
    envelopes = ",".join(_matched_envelope(m, matched.get(m.channel)) for m in messages)
    return f'{{"t":{{"t":"{cursor}","r":1}},"m":[{envelopes}]}}'


def _matched_envelope(message: LoggedMessage, group: str | None) -> str:
    if group is None:
        return message.envelope
    return with_match(message.envelope, message.channel, group)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _filter_accept(compiled: CompiledFilter) -> Callable[[LoggedMessage], bool]:
    matches = compiled.matches
    if not compiled.uses_data:

        def accept_by_meta(entry: LoggedMessage) -> bool:
            # Presence events carry no meta and always pass filters.
            if entry.channel.endswith(PRESENCE_SUFFIX):
                return True
            return matches(entry.meta)

        return accept_by_meta

    def accept(entry: LoggedMessage) -> bool:
        if entry.channel.endswith(PRESENCE_SUFFIX):
            return True
        # The payload is read back from the envelope only for filters that name data.*.
        return matches(entry.meta, _payload_of(entry))

    return accept


def _payload_of(entry: LoggedMessage) -> object:
    try:
        envelope = json.loads(entry.envelope)
    except ValueError:
        return None
    return envelope.get("d") if isinstance(envelope, dict) else None


_SUBSCRIBE_HEADERS = {"Content-Type": "application/json; charset=utf-8", **CORS_HEADERS}


def _json(text: str) -> web.Response:
    return web.Response(body=text.encode(), headers=_SUBSCRIBE_HEADERS)
