"""Request parsing and response writing shared by every realtime route.

The official client percent-encodes channel names and whole JSON messages into the
path (``/`` becomes ``%2F``), so routes read ``request.raw_path`` and decode each
segment themselves instead of trusting the router's decoded path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from blocks_devnet.json_input import parse_json
from blocks_devnet.realtime.errors import bad_request, invalid_subscribe_key
from blocks_devnet.realtime.keysets import Keyset, KeysetRegistry
from blocks_devnet.realtime.signing import parse_query_string

#: Longest channel name accepted (PubNub's documented API limit).
MAX_CHANNEL_LENGTH = 2048
#: Channels one request may name (subscribe, presence, history; our choice, docs/local-network.md).
MAX_CHANNELS_PER_REQUEST = 2000
#: Longest user id accepted.
MAX_UUID_LENGTH = 512

#: On every realtime answer, as the real service sends it: browser clients read them cross-origin.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", **CORS_HEADERS}


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Serialize once and send headers and body in a single write."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    merged = dict(_JSON_HEADERS)
    if headers:
        merged.update(headers)
    return web.Response(body=text.encode(), status=status, headers=merged)


def raw_segments(request: web.Request) -> list[str]:
    """The path's segments, still percent-encoded (query string removed)."""
    path = request.raw_path.split("?", 1)[0]
    return path.strip("/").split("/")


def decode_segment(segment: str) -> str:
    """Percent-decode one path segment; a 400 if the bytes it encodes are not UTF-8.

    Decoding strictly keeps distinct names distinct (``%ff`` and ``%fe`` would both
    become U+FFFD) and keeps mangled text out of stored messages.
    """
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise bad_request(
            f"Invalid path segment {segment[:64]!r}: it must percent-encode UTF-8 text"
        ) from None


def decode_channel_list(segment: str) -> list[str]:
    """A ``{chs}`` segment: comma-joined, each name encoded; ``,`` alone is empty.

    At most :data:`MAX_CHANNELS_PER_REQUEST` names: a request naming tens of thousands
    would hold the server's one event loop for most of a second.
    """
    if segment.count(",") >= MAX_CHANNELS_PER_REQUEST:
        parts = [part for part in segment.split(",") if part]
        if len(parts) > MAX_CHANNELS_PER_REQUEST:
            raise bad_request(
                f"Invalid channels: {len(parts)} given, at most {MAX_CHANNELS_PER_REQUEST} per "
                "request; split the list over several requests"
            )
    names = [decode_segment(part) for part in segment.split(",") if part]
    for name in names:
        validate_channel(name)
    return names


def validate_channel(name: str) -> None:
    if not name or len(name) > MAX_CHANNEL_LENGTH:
        raise bad_request(
            f"Invalid channel name {name[:64]!r}: must be 1..{MAX_CHANNEL_LENGTH} characters"
        )


@dataclass
class RealtimeRequest:
    """What every route needs from a request: keyset, identity, query and auth."""

    request: web.Request
    keyset: Keyset
    segments: list[str]
    query_pairs: list[tuple[str, str]]
    query: dict[str, str]
    uuid: str
    auth: str | None
    #: True when the request carries a valid secret-key signature (fully privileged).
    signed: bool = False

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")

    def int_param(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad_request(f"Invalid {name}: {raw[:32]!r} is not an integer") from None
        if not low <= value <= high:
            raise bad_request(f"Invalid {name}: must be between {low} and {high}")
        return value

    def json_param(self, name: str) -> Any:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return parse_json(raw)
        except ValueError as exc:
            raise bad_request(f"Invalid {name}: not valid JSON ({exc})") from None


def parse_query(request: web.Request) -> list[tuple[str, str]]:
    """Decoded ``k=v`` pairs in received order, split on the first ``=`` only.

    Parsed from the raw query: aiohttp's ``query_string`` is already partly decoded, and
    ``+`` must stay ``+`` (the client sends uuids and tokens unencoded).
    """
    return parse_query_string(request.raw_path.partition("?")[2])


def build_request(
    request: web.Request, keysets: KeysetRegistry, subscribe_key_index: int
) -> RealtimeRequest:
    """Resolve the keyset from the path segment at ``subscribe_key_index``."""
    segments = raw_segments(request)
    if subscribe_key_index >= len(segments):
        raise invalid_subscribe_key()
    keyset = keysets.by_subscribe_key(unquote(segments[subscribe_key_index]))
    if keyset is None:
        raise invalid_subscribe_key()
    pairs = parse_query(request)
    query = dict(pairs)
    uuid = query.get("uuid", "")
    if len(uuid) > MAX_UUID_LENGTH:
        raise bad_request(f"Invalid uuid: longer than {MAX_UUID_LENGTH} characters")
    auth = query.get("auth") or None
    return RealtimeRequest(
        request=request,
        keyset=keyset,
        segments=segments,
        query_pairs=pairs,
        query=query,
        uuid=uuid,
        auth=auth,
    )
