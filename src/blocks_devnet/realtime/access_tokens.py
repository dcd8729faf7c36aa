"""Access Manager v3 for the local realtime server: issue, verify and check tokens (no I/O).

Tokens have the real service's wire format, which the official client's `parse_token` decodes:
base64url (with `=` padding) of a CBOR map with byte-string keys
`v, t, ttl, res, pat, meta, [cat], [uuid], sig`. `sig` is opaque to clients; here it is
HMAC-SHA256(secret key, canonical CBOR of the map without `sig`). Minting encodes with
`token_cbor` (cbor2's exact bytes, several times faster); verification decodes with cbor2.

Exceptions::

    AccessManagerError
     ├── InvalidGrantError (also ValueError)  a TokenGrant built with bad fields (a caller bug)
     ├── GrantRequestError                    a grant_token POST body the service rejects (400)
     └── TokenError                           an `auth` token the service rejects (403)
          ├── TokenMalformedError
          ├── TokenSignatureError
          └── TokenExpiredError
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import cbor2

from blocks_devnet.realtime import token_cbor
from blocks_network.protocol.token_scope import cbor_text_keys

logger = logging.getLogger(__name__)

READ = 1
WRITE = 2
MANAGE = 4
DELETE = 8
CREATE = 16
GET = 32
UPDATE = 64
JOIN = 128
ALL_PERMISSIONS = 255

TOKEN_VERSION = 2
MIN_TTL_MINUTES = 1
MAX_TTL_MINUTES = 43200
# Tokens travel in a URL query; anything longer is not one of ours.
MAX_TOKEN_CHARS = 32768
SERVICE = "Access Manager"
PRESENCE_SUFFIX = "-pnpres"

#: A grant's meta holds any JSON value, nested objects and arrays included (as the real service).
MetaValue = Any
#: How deep meta may nest (objects and arrays); deeper is refused as invalid meta.
MAX_META_DEPTH = 16
_Bits = dict[str, int]

# Resource-map keys in real tokens, in the real order; `usr`/`spc` stay empty (see grant parsing).
_RESOURCE_WIRE_KEYS = (b"chan", b"grp", b"usr", b"spc", b"uuid")
_CATEGORY_WIRE_KEYS = {"channels": b"chan", "uuids": b"uuid"}
_SIG_BYTES = 32
#: Tokens issued lately by this process, with their secret and grant: verifying one of them
#: needs no CBOR decode or HMAC (the backend mints a write and a read token per task, and
#: each is verified on first use). Oldest entries go first.
_ISSUED_CACHE_SIZE = 4096
_issued: dict[str, tuple[str, TokenGrant]] = {}
_BITS_FIELDS = (
    "channels",
    "groups",
    "uuids",
    "channel_patterns",
    "group_patterns",
    "uuid_patterns",
    "categories",
)
_COPIED_FIELDS = (*_BITS_FIELDS, "meta")


class AccessManagerError(Exception):
    """Root of every error raised by this module."""


class InvalidGrantError(AccessManagerError, ValueError):
    """A TokenGrant was built with fields a token cannot carry."""


class GrantRequestError(AccessManagerError):
    """A grant_token request body the service rejects; answer HTTP 400 with `body`."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["details"][0]["message"])
        self.body = body
        self.status = 400


class TokenError(AccessManagerError):
    """An `auth` token the service rejects; answer HTTP 403 with `token_error_body(err)`."""

    title = "Invalid token"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TokenMalformedError(TokenError):
    """The token is not base64url CBOR in the Access Manager v3 layout."""

    title = "Invalid token"

    def __init__(self, message: str) -> None:
        super().__init__("token_malformed", message)


class TokenSignatureError(TokenError):
    """The token was not issued with this keyset's secret key, or was altered."""

    title = "Invalid token signature"

    def __init__(self, message: str) -> None:
        super().__init__("token_signature_invalid", message)


class TokenExpiredError(TokenError):
    """The token's `t + ttl` lies in the past."""

    title = "Token is expired"

    def __init__(self, message: str) -> None:
        super().__init__("token_expired", message)


def _check_bits_map(name: str, value: object) -> None:
    if not isinstance(value, dict):
        raise InvalidGrantError(f"{name} must be a dict of name -> permission bits")
    for key, bits in value.items():
        if not isinstance(key, str):
            raise InvalidGrantError(f"{name} keys must be strings, got {key!r}")
        if not _is_bits(bits):
            raise InvalidGrantError(f"{name}[{key!r}] must be an int from 0 to 255, got {bits!r}")


def _is_bits(value: object) -> bool:
    return type(value) is int and 0 <= value <= ALL_PERMISSIONS


def _is_meta_value(value: object, depth: int = 0) -> bool:
    if value is None or type(value) in (str, int, float, bool):
        return True
    if depth >= MAX_META_DEPTH:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_meta_value(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_meta_value(item, depth + 1) for item in value)
    return False


@dataclass(frozen=True)
class TokenGrant:
    """What one token grants. Construction validates the fields (raises InvalidGrantError).

    `channels`/`groups`/`uuids` map exact names to permission bits; the `*_patterns` fields map
    regular expressions (matched against whole names) to bits. `categories` maps "channels" or
    "uuids" to bits (App Context category grants; kept only so `parse_token` shows them).
    """

    issued_at: int
    ttl_minutes: int
    channels: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    uuids: dict[str, int] = field(default_factory=dict)
    channel_patterns: dict[str, int] = field(default_factory=dict)
    group_patterns: dict[str, int] = field(default_factory=dict)
    uuid_patterns: dict[str, int] = field(default_factory=dict)
    meta: dict[str, MetaValue] = field(default_factory=dict)
    authorized_uuid: str | None = None
    categories: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.issued_at) is not int or self.issued_at < 0:
            raise InvalidGrantError(f"issued_at must be a unix time in s, got {self.issued_at!r}")
        if type(self.ttl_minutes) is not int or self.ttl_minutes < 1:
            raise InvalidGrantError(f"ttl_minutes must be a positive int, got {self.ttl_minutes!r}")
        for name in _BITS_FIELDS:
            value = getattr(self, name)
            if value or not isinstance(value, dict):  # most are empty: skip the call
                _check_bits_map(name, value)
        if self.categories and not self.categories.keys() <= _CATEGORY_WIRE_KEYS.keys():
            raise InvalidGrantError("categories keys must be 'channels' or 'uuids'")
        if not isinstance(self.meta, dict) or not all(
            isinstance(k, str) and _is_meta_value(v) for k, v in self.meta.items()
        ):
            raise InvalidGrantError(
                f"meta must map strings to JSON values nested at most {MAX_META_DEPTH} deep"
            )
        if self.authorized_uuid is not None and (
            not isinstance(self.authorized_uuid, str) or not self.authorized_uuid
        ):
            raise InvalidGrantError("authorized_uuid must be None or a non-empty string")

    @property
    def expires_at(self) -> int:
        """Unix time (s) from which the token is expired."""
        return self.issued_at + self.ttl_minutes * 60


# ------------------------------------------------------------------------------------- tokens


def _payload(grant: TokenGrant) -> dict[bytes, Any]:
    def section(chan: _Bits, grp: _Bits, uuid: _Bits) -> dict[bytes, Any]:
        by_key = {b"chan": chan, b"grp": grp, b"uuid": uuid}
        return {key: dict(by_key.get(key, {})) for key in _RESOURCE_WIRE_KEYS}

    payload: dict[bytes, Any] = {
        b"v": TOKEN_VERSION,
        b"t": grant.issued_at,
        b"ttl": grant.ttl_minutes,
        b"res": section(grant.channels, grant.groups, grant.uuids),
        b"pat": section(grant.channel_patterns, grant.group_patterns, grant.uuid_patterns),
        b"meta": dict(grant.meta),
    }
    if grant.categories:
        payload[b"cat"] = {_CATEGORY_WIRE_KEYS[k]: v for k, v in grant.categories.items()}
    if grant.authorized_uuid is not None:
        payload[b"uuid"] = grant.authorized_uuid
    return payload


def _signature(payload: Mapping[Any, Any], secret_key: str) -> bytes:
    # Canonical CBOR, so the check does not depend on map order in the token.
    return _sign(cbor2.dumps(dict(payload), canonical=True), secret_key)


def _sign(signed: bytes, secret_key: str) -> bytes:
    keyed = _keyed_hmac(secret_key).copy()
    keyed.update(signed)
    return keyed.digest()


def _sha256(data: bytes = b"") -> Any:
    return hashlib.sha256(data)


@functools.lru_cache(maxsize=64)
def _keyed_hmac(secret_key: str) -> hmac.HMAC:
    # Keyed once per secret and copied per token. A plain function as digestmod makes hmac
    # keep two hashlib states, whose copies cost less than OpenSSL's HMAC set-up per call.
    return hmac.new(secret_key.encode("utf-8"), digestmod=_sha256)


def issue_token(grant: TokenGrant, secret_key: str) -> str:
    """Encode and sign `grant` as an Access Manager v3 token (padded base64url CBOR).

    Pure and thread-safe. The result decodes with the official client's `parse_token`.
    Raises InvalidGrantError if the grant's dicts were changed into something invalid.
    """
    private = _unshared_copy(grant)
    try:
        signed, unsigned = token_cbor.encode_grant(private, TOKEN_VERSION)
    except token_cbor.Unencodable:
        # A value past 64 bits (cbor2 writes a bignum) or a grant changed since validation.
        private = replace(private)  # re-runs the validation: raises InvalidGrantError
        payload = _payload(private)
        signed, unsigned = cbor2.dumps(payload, canonical=True), cbor2.dumps(payload)
    raw = token_cbor.with_sig(unsigned, _sign(signed, secret_key))
    token = base64.urlsafe_b64encode(raw).decode("ascii")
    _remember_issued(token, secret_key, private)
    return token


def _unshared_copy(grant: TokenGrant) -> TokenGrant:
    # The issued cache must not share the caller's dicts: the caller may change them later.
    # Built without __init__ (validation and dataclasses.replace cost more than the rest of
    # minting); encode_grant re-checks every value it signs.
    private = object.__new__(type(grant))
    fields = dict(grant.__dict__)
    for name in _COPIED_FIELDS:
        value = fields[name]
        fields[name] = dict(value) if value else {}
    private.__dict__.update(fields)
    return private


def _remember_issued(token: str, secret_key: str, grant: TokenGrant) -> None:
    if len(_issued) >= _ISSUED_CACHE_SIZE:
        # A quarter at a time: deleting the first key one by one leaves a run of holes that
        # every later `next(iter(_issued))` walks through.
        try:
            oldest = list(itertools.islice(_issued, _ISSUED_CACHE_SIZE // 4))
        except RuntimeError:  # another thread changed the cache meanwhile; evict next time
            oldest = []
        for key in oldest:
            _issued.pop(key, None)
    _issued[token] = (secret_key, grant)


def _text_keys(value: object, what: str) -> dict[str, Any]:
    keyed = cbor_text_keys(value)
    if keyed is None:
        raise TokenMalformedError(f"token field {what} is not a map with text keys")
    return keyed


def _bits_section(value: object, what: str) -> tuple[_Bits, _Bits, _Bits]:
    sections = _text_keys(value, what)
    parsed: dict[str, dict[str, int]] = {}
    for wire in ("chan", "grp", "usr", "spc", "uuid"):
        entries = _text_keys(sections.get(wire, {}), f"{what}.{wire}")
        if not all(_is_bits(bits) for bits in entries.values()):
            raise TokenMalformedError(f"token field {what}.{wire} has a non-bitmask value")
        parsed[wire] = entries
    return (
        _merge_bits(parsed["chan"], parsed["spc"]),
        parsed["grp"],
        _merge_bits(parsed["uuid"], parsed["usr"]),
    )


def _merge_bits(first: Mapping[str, int], second: Mapping[str, int]) -> dict[str, int]:
    merged = dict(first)
    for name, bits in second.items():
        merged[name] = merged.get(name, 0) | bits
    return merged


def _grant_from_payload(fields: dict[str, Any]) -> TokenGrant:
    version, issued_at, ttl = fields.get("v"), fields.get("t"), fields.get("ttl")
    if version != TOKEN_VERSION or type(version) is not int:
        raise TokenMalformedError(f"token version is {version!r}, expected {TOKEN_VERSION}")
    if not isinstance(issued_at, int) or not isinstance(ttl, int):
        raise TokenMalformedError("token fields t and ttl must be integers")
    channels, groups, uuids = _bits_section(fields.get("res"), "res")
    channel_pats, group_pats, uuid_pats = _bits_section(fields.get("pat"), "pat")
    wire_categories = _text_keys(fields.get("cat", {}), "cat")
    categories = {
        name: wire_categories[wire.decode()]
        for name, wire in _CATEGORY_WIRE_KEYS.items()
        if wire.decode() in wire_categories
    }
    try:
        return TokenGrant(
            issued_at=issued_at,
            ttl_minutes=ttl,
            channels=channels,
            groups=groups,
            uuids=uuids,
            channel_patterns=channel_pats,
            group_patterns=group_pats,
            uuid_patterns=uuid_pats,
            meta=_text_keys(fields.get("meta"), "meta"),
            authorized_uuid=fields.get("uuid"),
            categories=categories,
        )
    except InvalidGrantError as exc:
        raise TokenMalformedError(f"token content is invalid: {exc}") from exc


def verify_token(token: str, secret_key: str, now: float) -> TokenGrant:
    """Check `token` (signature, layout, expiry at unix time `now`) and return what it grants.

    Pure and thread-safe. Raises TokenMalformedError, TokenSignatureError or TokenExpiredError
    (all TokenError) and nothing else, whatever the input. Only the exact string `issue_token`
    produced is accepted (no re-padded or re-encoded variants), so a revocation list can key on
    the token string.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenMalformedError("the token is empty, not a string or too long")
    issued = _issued.get(token)
    if issued is not None and hmac.compare_digest(issued[0].encode(), secret_key.encode()):
        _check_expiry(issued[1], now)
        return issued[1]
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
    except (ValueError, UnicodeEncodeError):
        raise TokenMalformedError("the token is not padded base64url") from None
    try:
        decoded = cbor2.loads(raw)
    except Exception:  # cbor2 raises assorted types on hostile input
        raise TokenMalformedError("the token is not CBOR") from None
    if not isinstance(decoded, dict):
        raise TokenMalformedError("the token is not a CBOR map")
    fields = _text_keys(decoded, "token")
    sig = fields.pop("sig", None)
    if not isinstance(sig, bytes) or len(sig) != _SIG_BYTES:
        raise TokenMalformedError("the token has no 32-byte sig")
    unsigned = {key: value for key, value in decoded.items() if key not in (b"sig", "sig")}
    try:
        expected = _signature(unsigned, secret_key)
    except Exception:  # unencodable decoded values (tags, undefined) mean not ours
        raise TokenMalformedError("the token holds values this server never issues") from None
    if not hmac.compare_digest(sig, expected):
        raise TokenSignatureError(
            "the token was altered or issued for another keyset; request a new one with grant_token"
        )
    grant = _grant_from_payload(fields)
    if base64.urlsafe_b64encode(cbor2.dumps(decoded)).decode("ascii") != token:
        raise TokenMalformedError(
            "the token is not in the exact form grant_token returned; pass it unchanged"
        )
    _check_expiry(grant, now)
    return grant


def token_expiry(token: str) -> int | None:
    """The unix time (s) from which ``token`` is expired, read without checking its
    signature; None when it is not a readable token. For bookkeeping only (pruning
    revocations), never for access decisions."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        decoded = cbor2.loads(base64.b64decode(token.encode("ascii"), altchars=b"-_"))
        fields = _text_keys(decoded, "token")
    except Exception:  # hostile input: cbor2 and base64 raise assorted types
        return None
    issued_at, ttl = fields.get("t"), fields.get("ttl")
    if type(issued_at) is not int or type(ttl) is not int:
        return None
    return issued_at + ttl * 60


def _check_expiry(grant: TokenGrant, now: float) -> None:
    if now >= grant.expires_at:
        raise TokenExpiredError(
            f"the token expired at unix time {grant.expires_at}; request a new one with grant_token"
        )


# ------------------------------------------------------------------------- access checks


@dataclass(frozen=True)
class DeniedResources:
    """Names a request asked for that the token does not allow, in request order."""

    channels: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.channels or self.groups)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except Exception:  # re.error, RecursionError, OverflowError on pathological patterns
        logger.debug(
            "token pattern %r is not a valid regular expression; it never matches", pattern
        )
        return None


def _granted_bits(name: str, exact: Mapping[str, int], patterns: Mapping[str, int]) -> int:
    bits = exact.get(name, 0)
    for pattern, pattern_bits in patterns.items():
        compiled = _compiled(pattern)
        if compiled is not None and compiled.fullmatch(name):
            bits |= pattern_bits
    return bits


def _denied(
    names: Iterable[str], exact: Mapping[str, int], patterns: Mapping[str, int], permission: int
) -> tuple[str, ...]:
    denied: list[str] = []
    for name in dict.fromkeys(names):
        # Presence channels and groups inherit the permissions of the base name.
        base = name[: -len(PRESENCE_SUFFIX)] if name.endswith(PRESENCE_SUFFIX) else name
        if _granted_bits(base, exact, patterns) & permission != permission:
            denied.append(name)
    return tuple(denied)


def denied_resources(
    grant: TokenGrant,
    *,
    channels: Iterable[str] = (),
    groups: Iterable[str] = (),
    permission: int,
    uuid: str | None,
) -> DeniedResources:
    """Return the channels and groups `grant` does not allow `permission` (all bits) on.

    An exact entry and every pattern (regex, full-name match) that matches add their bits
    together. `X-pnpres` is checked as `X`. If the grant has an authorized uuid and `uuid`
    differs (or is None), everything is denied. Raises ValueError if `permission` is not a
    non-zero bitmask. Expiry is not checked here (verify_token does).
    """
    if type(permission) is not int or not 0 < permission <= ALL_PERMISSIONS:
        raise ValueError(
            f"permission must be a non-zero bitmask of READ, WRITE, ...: {permission!r}"
        )
    channels, groups = list(channels), list(groups)
    if grant.authorized_uuid is not None and uuid != grant.authorized_uuid:
        return DeniedResources(tuple(dict.fromkeys(channels)), tuple(dict.fromkeys(groups)))
    return DeniedResources(
        _denied(channels, grant.channels, grant.channel_patterns, permission),
        _denied(groups, grant.groups, grant.group_patterns, permission),
    )


def check_access(
    grant: TokenGrant,
    *,
    channels: Iterable[str] = (),
    groups: Iterable[str] = (),
    permission: int,
    uuid: str | None,
) -> list[str]:
    """Return the denied channel names, then the denied group names; empty means allowed.

    Same rules as `denied_resources`, which keeps channels and groups apart for `forbidden_body`.
    """
    denied = denied_resources(
        grant, channels=channels, groups=groups, permission=permission, uuid=uuid
    )
    return [*denied.channels, *denied.groups]


# ------------------------------------------------------------------------- error bodies


def forbidden_body(channels: Iterable[str], groups: Iterable[str] = ()) -> dict[str, Any]:
    """The real 403 body for denied channels (and `channel-groups` when groups are denied)."""
    channel_list, group_list = list(channels), list(groups)
    payload: dict[str, list[str]] = {}
    if channel_list or not group_list:
        payload["channels"] = channel_list
    if group_list:
        payload["channel-groups"] = group_list
    return {
        "message": "Forbidden",
        "payload": payload,
        "error": True,
        "service": SERVICE,
        "status": 403,
    }


def invalid_signature_body() -> dict[str, Any]:
    """The real 403 body for a request whose `signature` does not verify."""
    return {"message": "Invalid Signature", "error": True, "service": SERVICE, "status": 403}


def token_error_body(error: TokenError) -> dict[str, Any]:
    """403 body for a rejected `auth` token, in the service's newer `authz` error shape."""
    return {
        "status": 403,
        "error": {
            "message": error.title,
            "source": "authz",
            "details": [{"message": error.message, "location": "auth", "locationType": "query"}],
        },
        "service": SERVICE,
    }


def grant_error_body(
    message: str,
    detail: str,
    location: str,
    *,
    source: str = "grant",
    location_type: str = "body",
) -> dict[str, Any]:
    """A 400 body in the real Access Manager error shape (grant's `Invalid ttl`, revoke's
    `Invalid token`)."""
    return {
        "error": {
            "message": message,
            "source": source,
            "details": [{"message": detail, "location": location, "locationType": location_type}],
        },
        "service": SERVICE,
        "status": 400,
    }


# ---------------------------------------------------------------------- grant requests


def _reject(message: str, detail: str, location: str) -> GrantRequestError:
    return GrantRequestError(grant_error_body(message, detail, location))


def _request_bits(value: object, location: str, *, patterns: bool) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _reject("Invalid permissions", f"{location} must be an object.", location)
    for name, bits in value.items():
        if not _is_bits(bits):
            detail = f"Permission for {name!r} must be an integer bitmask from 0 to 255."
            raise _reject("Invalid permissions", detail, location)
        if patterns and _compiled(name) is None:
            detail = f"{name!r} is not a valid regular expression."
            raise _reject("Invalid RegExp", detail, location)
    return dict(value)


def _request_section(permissions: dict[str, Any], section: str) -> tuple[_Bits, _Bits, _Bits]:
    location = f"permissions.{section}"
    value = permissions.get(section)
    if value is None:
        return {}, {}, {}
    if not isinstance(value, dict):
        raise _reject("Invalid permissions", f"{location} must be an object.", location)
    patterns = section == "patterns"
    kinds = {
        kind: _request_bits(value.get(kind), f"{location}.{kind}", patterns=patterns)
        for kind in ("channels", "groups", "uuids", "users", "spaces")
    }
    # The SDK copies channels into `spaces` and uuids into `users`; real tokens fold them back.
    return (
        _merge_bits(kinds["channels"], kinds["spaces"]),
        kinds["groups"],
        _merge_bits(kinds["uuids"], kinds["users"]),
    )


def _request_ttl(value: object) -> int | None:
    """The grant's ttl in minutes: an integer, or a string of decimal digits (the real service
    takes ``"15"`` as 15); None for anything else."""
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    return None


def grant_from_request_body(body: object, now: float) -> TokenGrant:
    """Validate a parsed grant_token POST body (as the official SDK sends it) into a TokenGrant.

    `now` (unix s) becomes the issue time. Pass `None` for a body that is not JSON. Raises
    GrantRequestError whose `body` is the 400 response (the real one for a bad ttl).
    """
    if not isinstance(body, dict):
        raise _reject("Invalid request body", "The body must be a JSON object.", "body")
    ttl = _request_ttl(body.get("ttl"))
    if ttl is None or not MIN_TTL_MINUTES <= ttl <= MAX_TTL_MINUTES:
        detail = f"Range should be {MIN_TTL_MINUTES} to {MAX_TTL_MINUTES} minute(s)."
        raise _reject("Invalid ttl", detail, "ttl")
    permissions = body.get("permissions")
    if not isinstance(permissions, dict):
        detail = "permissions must be an object with resources and/or patterns."
        raise _reject("Invalid permissions", detail, "permissions")
    channels, groups, uuids = _request_section(permissions, "resources")
    channel_pats, group_pats, uuid_pats = _request_section(permissions, "patterns")
    categories = _request_bits(
        permissions.get("categories"), "permissions.categories", patterns=False
    )
    if not set(categories) <= set(_CATEGORY_WIRE_KEYS):
        detail = "Only the 'channels' and 'uuids' categories exist."
        raise _reject("Invalid permissions", detail, "permissions.categories")
    if not any((channels, groups, uuids, channel_pats, group_pats, uuid_pats, categories)):
        detail = "Grant at least one resource, pattern or category."
        raise _reject("Invalid permissions", detail, "permissions")
    meta = permissions.get("meta", {})
    if not isinstance(meta, dict) or not all(_is_meta_value(v) for v in meta.values()):
        detail = (
            "meta must be an object whose values are JSON values nested at most "
            f"{MAX_META_DEPTH} deep."
        )
        raise _reject("Invalid meta", detail, "permissions.meta")
    authorized = permissions.get("uuid")
    if authorized is not None and (not isinstance(authorized, str) or not authorized):
        raise _reject("Invalid uuid", "uuid must be a non-empty string.", "permissions.uuid")
    return TokenGrant(
        issued_at=int(now),
        ttl_minutes=ttl,
        channels=channels,
        groups=groups,
        uuids=uuids,
        channel_patterns=channel_pats,
        group_patterns=group_pats,
        uuid_patterns=uuid_pats,
        meta=meta,
        authorized_uuid=authorized,
        categories=categories,
    )
