"""Presence REST routes (pubnub-wire.md §4): heartbeat, leave, state, here_now, where_now.

Every route lives under ``/v2/presence/sub-key/{sub}``; one handler reads the raw path
segments (channel names and uuids arrive percent-encoded) and dispatches on their shape.
A ``channel-group=`` parameter stands for the groups' member channels (heartbeat, leave,
here_now, get_state); access to a group is checked on the group itself, as PubNub does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from blocks_devnet.realtime.access import READ
from blocks_devnet.realtime.channel_groups import parse_group_list
from blocks_devnet.realtime.errors import bad_request, not_found
from blocks_devnet.realtime.http import (
    MAX_UUID_LENGTH,
    RealtimeRequest,
    build_request,
    decode_channel_list,
    decode_segment,
    json_response,
)
from blocks_devnet.realtime.presence import (
    DEFAULT_HEARTBEAT_SECONDS,
    PRESENCE_SUFFIX,
    parse_channel_states,
)
from blocks_devnet.realtime.service import RealtimeService, service_of
from blocks_devnet.realtime.subscribe import MAX_HEARTBEAT_SECONDS

SERVICE = "Presence"
#: here_now lists at most this many uuids per channel (PubNub's limit and the client's default).
MAX_HERE_NOW_LIMIT = 1000
#: Largest ``state=`` parameter accepted (PubNub's message size limit).
MAX_STATE_BYTES = 32 * 1024
_LARGEST_INT_PARAM = 2**31 - 1


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the presence routes on ``router``."""
    # No HEAD twin: heartbeat, leave and set-state change state.
    router.add_get("/v2/presence/sub-key/{tail:.+}", handle_presence, allow_head=False)


async def handle_presence(request: web.Request) -> web.Response:
    """Dispatch ``/v2/presence/sub-key/{sub}[/...]`` on the shape of the rest of the path."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=3)
    service.access.verify_signature(req, b"")
    rest = req.segments[4:]
    if not rest:
        return _here_now_global(service, req)
    if rest[0] == "uuid" and len(rest) == 2:
        return _where_now(service, req, _path_uuid(rest[1]))
    if rest[0] == "channel" and len(rest) >= 2:
        channels = decode_channel_list(rest[1])
        operation = rest[2:]
        if len(operation) == 3 and operation[0] == "uuid" and operation[2] == "data":
            return _set_state(service, req, channels, _path_uuid(operation[1]))
        channels = _with_group_members(service, req, channels)
        if not operation:
            return _here_now(service, req, channels)
        if operation == ["heartbeat"]:
            return _heartbeat(service, req, channels)
        if operation == ["leave"]:
            return _leave(service, req, channels)
        if len(operation) == 2 and operation[0] == "uuid":
            return _get_state(service, req, channels, _path_uuid(operation[1]))
    raise not_found(
        "Unknown presence endpoint: see /v2/presence/sub-key/{sub}/channel/{channels}/...", SERVICE
    )


def _heartbeat(service: RealtimeService, req: RealtimeRequest, channels: list[str]) -> web.Response:
    uuid = _query_uuid(req)
    _require_channels_or_groups(req, channels)
    heartbeat: int | None = None
    if "heartbeat" in req.query:
        heartbeat = req.int_param(
            "heartbeat", DEFAULT_HEARTBEAT_SECONDS, low=0, high=MAX_HEARTBEAT_SECONDS
        )
    data_channels = _data_channels(channels)
    states = parse_channel_states(_state_param(req), data_channels)
    _require_read(service, req, channels)
    service.presence.heartbeat(req.keyset.subscribe_key, uuid, data_channels, heartbeat, states)
    return _ok({})


def _leave(service: RealtimeService, req: RealtimeRequest, channels: list[str]) -> web.Response:
    uuid = _query_uuid(req)
    _require_channels_or_groups(req, channels)
    _require_read(service, req, channels)
    service.presence.leave(req.keyset.subscribe_key, uuid, _data_channels(channels))
    return _ok({"action": "leave"})


def _set_state(
    service: RealtimeService, req: RealtimeRequest, channels: list[str], uuid: str
) -> web.Response:
    if not channels:
        raise bad_request(
            "Invalid set_state: state can be set on channels only, not on channel groups", SERVICE
        )
    state = _state_param(req)
    if not isinstance(state, dict):
        raise bad_request("Invalid state: the state parameter must be a JSON object", SERVICE)
    service.access.require(req, channels=channels, permission=READ)
    service.presence.set_state(req.keyset.subscribe_key, uuid, _data_channels(channels), state)
    return _ok({"payload": state})


def _get_state(
    service: RealtimeService, req: RealtimeRequest, channels: list[str], uuid: str
) -> web.Response:
    _require_channels_or_groups(req, channels)
    _require_read(service, req, channels)
    key = req.keyset.subscribe_key
    states = {channel: service.presence.get_state(key, uuid, channel) for channel in channels}
    if len(channels) == 1 and not _groups(req):
        # The client reads a single channel's state straight from ``payload``.
        return _ok({"payload": states[channels[0]], "uuid": uuid, "channel": channels[0]})
    return _ok({"payload": {"channels": states}, "uuid": uuid})


def _here_now(service: RealtimeService, req: RealtimeRequest, channels: list[str]) -> web.Response:
    _require_channels_or_groups(req, channels)
    listing = _Listing(req)
    _require_read(service, req, channels)
    if len(channels) == 1 and not _groups(req):
        body = listing.channel(service, req.keyset.subscribe_key, channels[0])
        return _ok(body)
    return _ok({"payload": listing.channels(service, req.keyset.subscribe_key, channels)})


def _here_now_global(service: RealtimeService, req: RealtimeRequest) -> web.Response:
    listing = _Listing(req)
    service.access.require_token(req)
    key = req.keyset.subscribe_key
    return _ok({"payload": listing.channels(service, key, service.presence.occupied_channels(key))})


def _where_now(service: RealtimeService, req: RealtimeRequest, uuid: str) -> web.Response:
    service.access.require_token(req)
    return _ok(
        {"payload": {"channels": service.presence.where_now(req.keyset.subscribe_key, uuid)}}
    )


class _Listing:
    """here_now's options (``state``, ``disable_uuids``, ``limit``, ``offset``) and shapes."""

    def __init__(self, req: RealtimeRequest) -> None:
        self.include_state = req.flag("state")
        self.include_uuids = not req.flag("disable_uuids")
        limit = req.int_param("limit", MAX_HERE_NOW_LIMIT, low=0, high=_LARGEST_INT_PARAM)
        self.limit = min(limit, MAX_HERE_NOW_LIMIT)
        self.offset = req.int_param("offset", 0, low=0, high=_LARGEST_INT_PARAM)

    def channel(self, service: RealtimeService, subscribe_key: str, channel: str) -> dict[str, Any]:
        """``{"occupancy": N[, "uuids": [...]]}`` for one channel."""
        uuids = service.presence.occupants(subscribe_key, channel)
        body: dict[str, Any] = {"occupancy": len(uuids)}
        if self.include_uuids:
            page = uuids[self.offset : self.offset + self.limit]
            body["uuids"] = [self._entry(service, subscribe_key, channel, uuid) for uuid in page]
        return body

    def channels(
        self, service: RealtimeService, subscribe_key: str, channels: list[str]
    ) -> dict[str, Any]:
        """The multi-channel ``payload``; unoccupied channels are left out, as PubNub does."""
        listed: dict[str, Any] = {}
        for channel in dict.fromkeys(channels):
            body = self.channel(service, subscribe_key, channel)
            if body["occupancy"]:
                listed[channel] = body
        total = sum(body["occupancy"] for body in listed.values())
        return {"channels": listed, "total_channels": len(listed), "total_occupancy": total}

    def _entry(self, service: RealtimeService, subscribe_key: str, channel: str, uuid: str) -> Any:
        if not self.include_state:
            return uuid
        entry: dict[str, Any] = {"uuid": uuid}
        state = service.presence.get_state(subscribe_key, uuid, channel)
        if state:
            entry["state"] = state
        return entry


def _ok(fields: dict[str, Any]) -> web.Response:
    body: dict[str, Any] = {"status": 200, "message": "OK"}
    body.update(fields)
    body["service"] = SERVICE
    return json_response(body)


def _data_channels(channels: list[str]) -> list[str]:
    """Presence is tracked on data channels; ``-pnpres`` names in a request are ignored."""
    return [channel for channel in channels if not channel.endswith(PRESENCE_SUFFIX)]


def _groups(req: RealtimeRequest) -> list[str]:
    return parse_group_list(req.query.get("channel-group"))


def _with_group_members(
    service: RealtimeService, req: RealtimeRequest, channels: list[str]
) -> list[str]:
    groups = _groups(req)
    if not groups:
        return channels
    members, _matched = service.channel_groups.expand(req.keyset.subscribe_key, groups)
    named = set(channels)
    return channels + [member for member in members if member not in named]


def _require_read(service: RealtimeService, req: RealtimeRequest, channels: list[str]) -> None:
    # The channels a group brought in are covered by the read grant on the group: only the
    # channels the path names (segment 5, after /channel/) are checked one by one.
    groups = _groups(req)
    direct = decode_channel_list(req.segments[5]) if groups else channels
    service.access.require(req, channels=direct, groups=groups, permission=READ)


def _require_channels_or_groups(req: RealtimeRequest, channels: list[str]) -> None:
    if not channels and not _groups(req):
        raise bad_request("Invalid request: name at least one channel or channel group", SERVICE)


def _query_uuid(req: RealtimeRequest) -> str:
    if not req.uuid:
        raise bad_request("Invalid uuid: the uuid query parameter is required", SERVICE)
    return req.uuid


def _path_uuid(segment: str) -> str:
    uuid = decode_segment(segment)
    if not uuid or len(uuid) > MAX_UUID_LENGTH:
        raise bad_request(f"Invalid uuid in path: must be 1..{MAX_UUID_LENGTH} characters", SERVICE)
    return uuid


def _state_param(req: RealtimeRequest) -> Any:
    if len(req.query.get("state", "")) > MAX_STATE_BYTES:
        raise bad_request(f"Invalid state: larger than {MAX_STATE_BYTES} bytes", SERVICE)
    return req.json_param("state")
