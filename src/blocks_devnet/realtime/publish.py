"""Publish, fire and signal (pubnub-wire.md §2)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from blocks_devnet.json_input import parse_json
from blocks_devnet.realtime.access import WRITE
from blocks_devnet.realtime.errors import publish_error
from blocks_devnet.realtime.http import (
    RealtimeRequest,
    build_request,
    decode_segment,
    json_response,
    validate_channel,
)
from blocks_devnet.realtime.message_log import MESSAGE, SIGNAL
from blocks_devnet.realtime.service import RealtimeService, service_of

#: PubNub's publish limit: the encoded message plus channel name.
MAX_MESSAGE_BYTES = 32 * 1024
#: Signals carry small payloads only.
MAX_SIGNAL_BYTES = 64 * 1024 // 2
#: ``ttl`` is in hours; keep it within a year.
MAX_TTL_HOURS = 24 * 366
#: Largest ``seqn`` accepted (the official clients count from 1 and wrap far below).
MAX_SEQN = 2**31 - 1
#: Largest POST publish body read, before and after decompression.
MAX_BODY_BYTES = MAX_MESSAGE_BYTES * 4


async def handle_publish(request: web.Request) -> web.Response:
    """``/publish/{pub}/{sub}/0/{ch}/0[/{msg}]`` by GET or POST."""
    return await _publish(request, message_type=MESSAGE)


async def handle_signal(request: web.Request) -> web.Response:
    """``/signal/{pub}/{sub}/0/{ch}/0/{msg}``: never stored, ``e:1``."""
    return await _publish(request, message_type=SIGNAL)


async def _publish(request: web.Request, *, message_type: int) -> web.Response:
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=2)
    head = service.messages.clock.head
    segments = req.segments
    if len(segments) < 6:
        raise publish_error(
            400, "Invalid path: expected /publish/{pub}/{sub}/0/{channel}/0/{message}", head()
        )
    if decode_segment(segments[1]) != req.keyset.publish_key:
        raise publish_error(400, "Invalid Key", head())  # the real service's answer
    channel = decode_segment(segments[4])
    validate_channel(channel)

    body = b""
    if request.method == "POST":
        if len(segments) != 6:
            raise publish_error(
                400, "Invalid path: a POST publish carries the message in its body", head()
            )
        body = await _read_body(request, head())
        size = len(body) + len(segments[4])
        try:
            message_text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise publish_error(400, "Invalid JSON: the body is not UTF-8", head()) from None
    else:
        if len(segments) != 7:
            raise publish_error(
                400, "Invalid path: expected the message as the last path segment", head()
            )
        size = len(segments[6]) + len(segments[4])
        message_text = decode_segment(segments[6])
    service.access.verify_signature(req, body)

    if size > MAX_MESSAGE_BYTES:
        raise publish_error(413, "Message Too Large", head())
    message = parse_message(message_text, head())
    options = parse_publish_options(req, head(), storable=message_type == MESSAGE)

    service.access.require(req, channels=[channel], permission=WRITE)
    answer = service.intercept_publish(req, channel, message)
    if answer is not None:
        return answer

    return append_publish(
        service, req, channel, message, message_text.strip(), options, message_type=message_type
    )


def append_publish(
    service: RealtimeService,
    req: RealtimeRequest,
    channel: str,
    message: Any,
    message_json: str,
    options: PublishOptions,
    *,
    message_type: int,
) -> web.Response:
    """Append an accepted publish to the channel's log and answer ``[1,"Sent","<tt>"]``."""
    timetoken = service.messages.append(
        subscribe_key=req.keyset.subscribe_key,
        channel=channel,
        publisher=req.uuid,
        message=message,
        message_json=message_json,
        meta=options.meta,
        message_type=message_type,
        custom_message_type=options.custom_message_type,
        store=options.store,
        ttl_hours=options.ttl_hours,
        seqn=options.seqn,
    )
    return json_response(f'[1,"Sent","{timetoken}"]')


@dataclass(frozen=True)
class PublishOptions:
    """The query options publish, signal and publish-file share."""

    meta: Any
    custom_message_type: str | None
    store: bool
    ttl_hours: int | None
    #: The publisher's sequence number, relayed as the envelope's ``s``.
    seqn: int | None


def parse_publish_options(
    req: RealtimeRequest, timetoken: int, *, storable: bool = True
) -> PublishOptions:
    """``meta``, ``custom_message_type``, ``store``, ``ttl`` and ``seqn``; refusals use the
    publish shape.

    ``storable=False`` (signals) never stores, whatever ``store`` says.
    """
    meta = _parse_meta(req, timetoken)
    custom_message_type = req.query.get("custom_message_type") or None
    if custom_message_type is not None and not (3 <= len(custom_message_type) <= 50):
        raise publish_error(
            400, "Invalid custom_message_type: must be 3 to 50 characters", timetoken
        )
    store = storable and req.query.get("store", "1").lower() not in ("0", "false")
    return PublishOptions(
        meta=meta,
        custom_message_type=custom_message_type,
        store=store,
        ttl_hours=req.int_param("ttl", 0, low=0, high=MAX_TTL_HOURS) or None,
        seqn=_parse_seqn(req, timetoken),
    )


def _parse_seqn(req: RealtimeRequest, timetoken: int) -> int | None:
    raw = req.query.get("seqn")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or int(raw) > MAX_SEQN:
        message = f"Invalid seqn: must be an integer from 0 to {MAX_SEQN}"
        raise publish_error(400, message, timetoken)
    return int(raw)


def parse_message(text: str, timetoken: int) -> Any:
    """The published message, or PubNub's ``[0, "Invalid JSON", tt]`` 400."""
    return _parse_json(text, "Invalid JSON", timetoken)


async def _read_body(request: web.Request, timetoken: int) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise publish_error(413, "Message Too Large", timetoken)
    body = await request.read()
    if len(body) > MAX_BODY_BYTES:
        raise publish_error(413, "Message Too Large", timetoken)
    # The client labels zlib as gzip when compression is on (pubnub-wire.md §0).
    if request.headers.get("Content-Encoding", "").lower() in ("gzip", "deflate"):
        body = _decompress(body, timetoken)
    return body


def _decompress(body: bytes, timetoken: int) -> bytes:
    """gzip or zlib, never more than :data:`MAX_BODY_BYTES` out (a tiny bomb stays tiny)."""
    decoder = zlib.decompressobj(15 + 32)  # detects a gzip or a zlib header
    try:
        out = decoder.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise publish_error(400, "Invalid compressed body", timetoken) from None
    if len(out) > MAX_BODY_BYTES:
        raise publish_error(413, "Message Too Large", timetoken)
    if not decoder.eof:
        raise publish_error(400, "Invalid compressed body: the stream is truncated", timetoken)
    return out


def _parse_json(text: str, reason: str, timetoken: int) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        raise publish_error(400, reason, timetoken) from None


def _parse_meta(req: RealtimeRequest, timetoken: int) -> Any:
    raw = req.query.get("meta")
    if raw is None or raw in ("", "null"):
        return None
    meta = _parse_json(raw, "Invalid meta: not valid JSON", timetoken)
    if meta is not None and not isinstance(meta, dict):
        raise publish_error(400, "Invalid meta: must be a JSON object", timetoken)
    return meta
