"""Fast CBOR encoding of Access Manager token payloads, byte-identical to cbor2's.

Minting a token needs the canonical CBOR of its payload (what is signed) and the CBOR of the
token in the real service's key order (what is sent). cbor2's canonical mode costs ~25 µs per
payload and minting runs on the server's event loop twice per task, so the few value types a
payload holds are encoded here; `dumps` hands anything else to cbor2.

Canonical means what `cbor2.dumps(value, canonical=True)` emits (RFC 7049 §3.9): shortest
heads, map keys ordered by the length and then the bytes of their encoding, and floats in the
smallest of float16/32/64 that holds them exactly (NaN as f97e00).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Protocol

import cbor2

_UINT, _NEGINT, _BYTES, _TEXT, _MAP = 0x00, 0x20, 0x40, 0x60, 0xA0
_PACK_B = struct.Struct(">BB").pack
_PACK_H = struct.Struct(">BH").pack
_PACK_I = struct.Struct(">BI").pack
_PACK_Q = struct.Struct(">BQ").pack
_PACK_F16 = struct.Struct(">Be").pack
_PACK_F32 = struct.Struct(">Bf").pack
_PACK_F64 = struct.Struct(">Bd").pack
_UNPACK_F16 = struct.Struct(">e").unpack_from
_UNPACK_F32 = struct.Struct(">f").unpack_from
_NAN, _INF, _NEG_INF = b"\xf9\x7e\x00", b"\xf9\x7c\x00", b"\xf9\xfc\x00"
_EMPTY_MAP = b"\xa0"
#: Encodings of permission bitmasks (0..255), the commonest value in a payload.
_BITS = tuple(bytes((n,)) if n < 24 else bytes((0x18, n)) for n in range(256))


class Unencodable(Exception):
    """A value this module does not encode exactly as cbor2 would (or a grant field a valid
    TokenGrant cannot hold); the caller falls back to cbor2 and its own validation."""


class GrantFields(Protocol):
    """The TokenGrant fields a payload is built from (read-only)."""

    @property
    def issued_at(self) -> int: ...
    @property
    def ttl_minutes(self) -> int: ...
    @property
    def channels(self) -> Mapping[str, int]: ...
    @property
    def groups(self) -> Mapping[str, int]: ...
    @property
    def uuids(self) -> Mapping[str, int]: ...
    @property
    def channel_patterns(self) -> Mapping[str, int]: ...
    @property
    def group_patterns(self) -> Mapping[str, int]: ...
    @property
    def uuid_patterns(self) -> Mapping[str, int]: ...
    @property
    def meta(self) -> Mapping[str, object]: ...
    @property
    def authorized_uuid(self) -> str | None: ...
    @property
    def categories(self) -> Mapping[str, int]: ...


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return _PACK_B(major | 24, n)
    if n < 0x10000:
        return _PACK_H(major | 25, n)
    if n < 0x100000000:
        return _PACK_I(major | 26, n)
    if n < 0x10000000000000000:
        return _PACK_Q(major | 27, n)
    raise Unencodable("integer outside 64 bits (a bignum tag)")


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _head(_TEXT, len(raw)) + raw


def _float(value: float, canonical: bool) -> bytes:
    if math.isnan(value):
        return _NAN
    if math.isinf(value):
        return _INF if value > 0 else _NEG_INF
    if canonical:
        try:
            half = _PACK_F16(0xF9, value)
            if _UNPACK_F16(half, 1)[0] == value:
                return half
        except OverflowError:
            pass
        try:
            single = _PACK_F32(0xFA, value)
            if _UNPACK_F32(single, 1)[0] == value:
                return single
        except OverflowError:
            pass
    return _PACK_F64(0xFB, value)


def _by_encoded_key(entry: tuple[bytes, bytes]) -> tuple[int, bytes]:
    return len(entry[0]), entry[0]


def _encode(value: object, canonical: bool) -> bytes:
    # Exact types only: cbor2 may encode subclasses (and bool is an int) differently.
    if type(value) is str:
        return _text(value)
    if type(value) is int:
        return _head(_UINT, value) if value >= 0 else _head(_NEGINT, -1 - value)
    if type(value) is bytes:
        return _head(_BYTES, len(value)) + value
    if type(value) is bool:
        return b"\xf5" if value else b"\xf4"
    if value is None:
        return b"\xf6"
    if type(value) is float:
        return _float(value, canonical)
    if type(value) is dict:
        entries = []
        for key, item in value.items():
            if type(key) is not str and type(key) is not bytes:
                raise Unencodable(f"map key of type {type(key).__name__}")
            entries.append((_encode(key, canonical), _encode(item, canonical)))
        if canonical:
            entries.sort(key=_by_encoded_key)
        return _head(_MAP, len(entries)) + b"".join([k + v for k, v in entries])
    raise Unencodable(f"value of type {type(value).__name__}")


def dumps(value: object, *, canonical: bool = False) -> bytes:
    """Return exactly `cbor2.dumps(value, canonical=canonical)`.

    str, bytes, int (64-bit), bool, None, float and dicts of them with str/bytes keys are
    encoded here; a value holding anything else is encoded (or rejected) by cbor2.
    """
    try:
        return _encode(value, canonical)
    except (Unencodable, UnicodeEncodeError):
        return cbor2.dumps(value, canonical=canonical)


# ------------------------------------------------------------------------ token payloads

_V, _T, _TTL = b"\x41v", b"\x41t", b"\x43ttl"
_RES, _PAT, _META, _CAT, _UUID = b"\x43res", b"\x43pat", b"\x44meta", b"\x43cat", b"\x44uuid"
_SIG_ENTRY = b"\x43sig\x58\x20"  # key `sig`, then the head of a 32-byte string
_CHAN, _GRP, _USR, _SPC, _UUID_KEY = b"\x44chan", b"\x43grp", b"\x43usr", b"\x43spc", b"\x44uuid"
_CATEGORY_KEYS = {"channels": _CHAN, "uuids": _UUID_KEY}
_META_TYPES = (str, int, float, bool, type(None))
_TEXT_HEADS = tuple(_head(_TEXT, size) for size in range(256))


def _bits_map(bits: Mapping[str, int]) -> tuple[bytes, bytes]:
    """(canonical, in-order) encodings of a name -> permission bits map."""
    if not bits:
        return _EMPTY_MAP, _EMPTY_MAP
    # (UTF-8 length, UTF-8, entry): sorting these sorts by encoded key, as the head of a
    # text key grows with its length.
    entries: list[tuple[int, bytes, bytes]] = []
    for name, value in bits.items():
        if type(name) is not str or type(value) is not int or not 0 <= value <= 255:
            raise Unencodable(f"permission entry {name!r}: {value!r}")
        raw = name.encode()
        size = len(raw)
        head = _TEXT_HEADS[size] if size < 256 else _head(_TEXT, size)
        entries.append((size, raw, head + raw + _BITS[value]))
    map_head = _head(_MAP, len(entries))
    if len(entries) == 1:
        single = map_head + entries[0][2]
        return single, single
    in_order = map_head + b"".join([entry for _, _, entry in entries])
    entries.sort()
    return map_head + b"".join([entry for _, _, entry in entries]), in_order


def _join_section(
    chan: tuple[bytes, bytes], grp: tuple[bytes, bytes], uuid: tuple[bytes, bytes]
) -> tuple[bytes, bytes]:
    """(canonical, in-order) encodings of a `res` or `pat` map (`usr`, `spc` stay empty)."""
    canonical = (b"\xa5", _GRP, grp[0], _SPC, _EMPTY_MAP, _USR, _EMPTY_MAP, _CHAN, chan[0])
    in_order = (b"\xa5", _CHAN, chan[1], _GRP, grp[1], _USR, _EMPTY_MAP, _SPC, _EMPTY_MAP)
    return b"".join((*canonical, _UUID_KEY, uuid[0])), b"".join((*in_order, _UUID_KEY, uuid[1]))


_EMPTY_SECTION = _join_section((_EMPTY_MAP,) * 2, (_EMPTY_MAP,) * 2, (_EMPTY_MAP,) * 2)


def _section(
    chan: Mapping[str, int], grp: Mapping[str, int], uuid: Mapping[str, int]
) -> tuple[bytes, bytes]:
    if not chan and not grp and not uuid:
        return _EMPTY_SECTION
    return _join_section(_bits_map(chan), _bits_map(grp), _bits_map(uuid))


def _meta(meta: Mapping[str, object]) -> tuple[bytes, bytes]:
    if not meta:
        return _EMPTY_MAP, _EMPTY_MAP
    if type(meta) is not dict or not all(
        type(key) is str and type(value) in _META_TYPES for key, value in meta.items()
    ):
        raise Unencodable("meta holds a value a TokenGrant cannot")
    return _encode(meta, True), _encode(meta, False)


def _categories(categories: Mapping[str, int]) -> tuple[bytes, bytes]:
    entries: list[tuple[bytes, bytes]] = []
    for name, bits in categories.items():
        key = _CATEGORY_KEYS.get(name) if type(name) is str else None
        if key is None or type(bits) is not int or not 0 <= bits <= 255:
            raise Unencodable(f"category entry {name!r}: {bits!r}")
        entries.append((key, key + _BITS[bits]))
    head = _head(_MAP, len(entries))
    in_order = head + b"".join([entry for _, entry in entries])
    entries.sort(key=_by_encoded_key)
    return head + b"".join([entry for _, entry in entries]), in_order


def encode_grant(grant: GrantFields, version: int) -> tuple[bytes, bytes]:
    """Return (signed, unsigned token) for `grant`: the canonical CBOR of the token payload
    without `sig`, and its CBOR in the real key order (`v t ttl res pat meta [cat] [uuid]`).

    Both equal cbor2's encodings of that payload. Raises Unencodable when a field holds what
    a valid TokenGrant cannot (its dicts were changed after construction) or a value outside
    64 bits; the caller then validates the grant and uses cbor2.
    """
    try:
        return _encode_grant(grant, version)
    except UnicodeEncodeError as exc:  # a lone surrogate in a name: cbor2 raises it too
        raise Unencodable(str(exc)) from exc


def _encode_grant(grant: GrantFields, version: int) -> tuple[bytes, bytes]:
    issued_at, ttl_minutes = grant.issued_at, grant.ttl_minutes
    if type(issued_at) is not int or type(ttl_minutes) is not int:
        raise Unencodable("issued_at and ttl_minutes must be ints")
    if issued_at < 0 or ttl_minutes < 1:
        raise Unencodable("issued_at must be >= 0 and ttl_minutes >= 1")
    t, ttl = _head(_UINT, issued_at), _head(_UINT, ttl_minutes)
    version_bytes = _encode(version, True)
    res_c, res_w = _section(grant.channels, grant.groups, grant.uuids)
    pat_c, pat_w = _section(grant.channel_patterns, grant.group_patterns, grant.uuid_patterns)
    meta_c, meta_w = _meta(grant.meta)
    canonical = [_T, t, _V, version_bytes]
    in_order = [_V, version_bytes, _T, t, _TTL, ttl, _RES, res_w, _PAT, pat_w, _META, meta_w]
    count = 6
    if grant.categories:
        cat_c, cat_w = _categories(grant.categories)
        canonical += (_CAT, cat_c)
        in_order += (_CAT, cat_w)
        count += 1
    canonical += (_PAT, pat_c, _RES, res_c, _TTL, ttl, _META, meta_c)
    authorized = grant.authorized_uuid
    if authorized is not None:
        if type(authorized) is not str or not authorized:
            raise Unencodable("authorized_uuid must be a non-empty str")
        uuid = _text(authorized)
        canonical += (_UUID, uuid)
        in_order += (_UUID, uuid)
        count += 1
    head = bytes((_MAP | count,))
    return head + b"".join(canonical), head + b"".join(in_order)


def with_sig(unsigned: bytes, sig: bytes) -> bytes:
    """Append the entry `sig: <32 bytes>` to `unsigned`, a CBOR map of fewer than 23 entries
    (such as `encode_grant` or `dumps` returns): cbor2's encoding of the map plus `sig`."""
    count = unsigned[0] - _MAP
    if not 0 <= count < 23 or len(sig) != 32:
        raise ValueError("with_sig needs a map of under 23 entries and a 32-byte sig")
    return bytes((unsigned[0] + 1,)) + unsigned[1:] + _SIG_ENTRY + sig
