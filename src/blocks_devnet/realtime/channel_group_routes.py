"""The channel registry routes (PubNub's channel groups API).

``GET /v1/channel-registration/sub-key/{sub}/channel-group/{group}`` adds (``?add=a,b``), removes
(``?remove=a``) or lists a group's channels; ``.../{group}/remove`` deletes the group. Each needs
the ``manage`` permission on the group when Access Manager is on.
"""

from __future__ import annotations

from aiohttp import web

from blocks_devnet.realtime.access import MANAGE
from blocks_devnet.realtime.channel_groups import (
    MAX_CHANNELS_PER_GROUP,
    PRESENCE_SUFFIX,
    SERVICE,
    registry_error,
    validate_group,
)
from blocks_devnet.realtime.http import (
    RealtimeRequest,
    build_request,
    decode_segment,
    json_response,
    validate_channel,
)
from blocks_devnet.realtime.service import service_of


def _channel_list(req: RealtimeRequest, name: str) -> list[str]:
    raw = req.query.get(name, "")
    channels = [channel for channel in raw.split(",") if channel]
    if not channels:
        raise registry_error(400, f"Invalid {name}: name at least one channel")
    if len(channels) > MAX_CHANNELS_PER_GROUP:
        raise registry_error(
            400, f"Invalid {name}: {len(channels)} channels, at most {MAX_CHANNELS_PER_GROUP}"
        )
    for channel in channels:
        validate_channel(channel)
    return channels


_OK = {"status": 200, "message": "OK", "service": SERVICE, "error": False}


async def handle_channel_registration(request: web.Request) -> web.Response:
    """``GET /v1/channel-registration/sub-key/{sub}/channel-group/{group}[/remove]``."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=3)
    segments = req.segments
    if len(segments) not in (6, 7) or segments[4] != "channel-group":
        raise registry_error(
            400, "Invalid path: expected /v1/channel-registration/sub-key/{sub}/channel-group/{g}"
        )
    if len(segments) == 7 and segments[6] != "remove":
        raise registry_error(400, "Invalid path: the only action after the group is /remove")
    group = decode_segment(segments[5])
    validate_group(group)
    if group.endswith(PRESENCE_SUFFIX):
        raise registry_error(
            400, f"Invalid channel group name {group!r}: it must not end in -pnpres"
        )
    service.access.verify_signature(req, b"")
    service.access.require(req, groups=[group], permission=MANAGE)
    groups = service.channel_groups
    subscribe_key = req.keyset.subscribe_key
    if len(segments) == 7:
        groups.delete(subscribe_key, group)
        return json_response(_OK)
    if "add" in req.query:
        groups.add(subscribe_key, group, _channel_list(req, "add"))
        return json_response(_OK)
    if "remove" in req.query:
        groups.remove(subscribe_key, group, _channel_list(req, "remove"))
        return json_response(_OK)
    channels = list(groups.channels(subscribe_key, group))
    return json_response(
        {
            "status": 200,
            "payload": {"channels": channels, "group": group},
            "service": SERVICE,
            "error": False,
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the channel registry routes."""
    router.add_get(
        "/v1/channel-registration/sub-key/{tail:.+}", handle_channel_registration, allow_head=False
    )
