"""What an Access Manager v3 token grants, read without verifying it (pubnub-wire.md §7).

A consumer holds one read token per task; which channels that token reads decides which
sessions may share one multi-channel subscribe (pubnub-wire.md §3). Only the realtime
server can verify a token (the signature needs the keyset's secret key), so this is a
hint for grouping, never a check: a token that claims more than it grants is refused
with a 403 naming the channels, exactly as if it had been sent alone.

The token is base64url (padded or not) of a CBOR map with byte-string keys
``v, t, ttl, res, pat, meta, [uuid], sig``; ``res``/``pat`` hold ``chan`` maps of exact
names / regular expressions to permission bits. A pattern grants a channel when it
matches the whole name (``re.fullmatch``), as the local realtime server and the real
service's pattern grants do.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import cbor2

__all__ = ["READ", "TokenScope", "cbor_text_keys", "parse_token_scope"]

#: The Access Manager read bit (subscribe, history, files).
READ: Final = 1
_TOKEN_VERSION: Final = 2
_PRESENCE_SUFFIX: Final = "-pnpres"
#: Tokens travel in a URL query; anything longer is not a token worth decoding.
_MAX_TOKEN_CHARS: Final = 32768


@dataclass(frozen=True)
class TokenScope:
    """The channel grants and lifetime a token claims."""

    issued_at: int
    ttl_minutes: int
    channels: Mapping[str, int]
    channel_patterns: Mapping[str, int]
    authorized_uuid: str | None = None

    @property
    def expires_at(self) -> int:
        """Unix time (s) from which the realtime server refuses the token."""
        return self.issued_at + self.ttl_minutes * 60

    def reads(self, channel: str) -> bool:
        """Whether the token claims read on ``channel`` (``X-pnpres`` counts as ``X``)."""
        if channel.endswith(_PRESENCE_SUFFIX):
            channel = channel[: -len(_PRESENCE_SUFFIX)]
        bits = self.channels.get(channel, 0)
        for pattern, pattern_bits in self.channel_patterns.items():
            if bits & READ:
                break
            compiled = _compiled(pattern)
            if compiled is not None and compiled.fullmatch(channel):
                bits |= pattern_bits
        return bool(bits & READ)

    def reads_all(self, channels: Iterable[str]) -> bool:
        """Whether the token claims read on every one of ``channels``."""
        return all(self.reads(channel) for channel in channels)


def parse_token_scope(token: str | None) -> TokenScope | None:
    """What ``token`` claims, or None when it is absent or not an Access Manager v3 token
    (such a session then subscribes alone)."""
    if not token or len(token) > _MAX_TOKEN_CHARS:
        return None
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        decoded = cbor2.loads(raw)
    except Exception:  # binascii.Error, and cbor2 raises assorted types on hostile input
        return None
    return _scope(decoded)


def _scope(decoded: object) -> TokenScope | None:
    fields = cbor_text_keys(decoded)
    if fields is None:
        return None
    version, issued_at, ttl = fields.get("v"), fields.get("t"), fields.get("ttl")
    if version != _TOKEN_VERSION or type(issued_at) is not int or type(ttl) is not int:
        return None
    channels = _channel_bits(fields.get("res"))
    patterns = _channel_bits(fields.get("pat"))
    if channels is None or patterns is None:
        return None
    uuid = fields.get("uuid")
    return TokenScope(
        issued_at=issued_at,
        ttl_minutes=ttl,
        channels=channels,
        channel_patterns=patterns,
        authorized_uuid=uuid if isinstance(uuid, str) else None,
    )


def _channel_bits(section: object) -> dict[str, int] | None:
    """The ``chan`` (and, as the server reads them, ``spc``) grants of a ``res``/``pat`` map."""
    if section is None:
        return {}
    kinds = cbor_text_keys(section)
    if kinds is None:
        return None
    bits: dict[str, int] = {}
    for kind in ("chan", "spc"):
        entries = cbor_text_keys(kinds.get(kind, {}))
        if entries is None:
            return None
        for name, value in entries.items():
            if type(value) is not int:
                return None
            bits[name] = bits.get(name, 0) | value
    return bits


def cbor_text_keys(value: object) -> dict[str, Any] | None:
    """A CBOR map with text or UTF-8 byte-string keys, keyed by text; None for anything else."""
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if not isinstance(key, str):
            return None
        out[key] = item
    return out


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except Exception:  # re.error, RecursionError, OverflowError on pathological patterns
        return None
