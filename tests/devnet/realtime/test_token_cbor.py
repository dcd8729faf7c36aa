"""The fast token encoder: byte-identical to cbor2, and tokens minted with it still verify."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import random
import struct
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from pubnub.pubnub import PubNub

from blocks_devnet.realtime import access_tokens, token_cbor
from blocks_devnet.realtime.access_tokens import (
    ALL_PERMISSIONS,
    MAX_TOKEN_CHARS,
    READ,
    WRITE,
    InvalidGrantError,
    TokenError,
    TokenGrant,
    TokenSignatureError,
    issue_token,
    verify_token,
)
from tests.support.offline_pubnub import offline_pubnub

SECRET = "sec-c-token-cbor"
NOW = 1_700_000_000
#: Byte lengths where a CBOR head changes size (0-23 inline, then 1, 2, 4 more bytes).
LENGTHS = (0, 1, 23, 24, 255, 256, 65535, 65536)
UINTS = (0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1)
#: Every head-size boundary on both sides of zero, plus bignums (cbor2 tags, the fallback).
INTS = (*UINTS, *(-1 - n for n in UINTS), 2**64, -(2**64) - 1, 2**100)


@pytest.fixture
def pn() -> Iterator[PubNub]:
    with offline_pubnub(SECRET) as client:
        yield client


def reference_token(grant: TokenGrant, secret_key: str) -> str:
    """The token as cbor2 mints it (the implementation before token_cbor existed)."""
    payload = access_tokens._payload(grant)
    signed = cbor2.dumps(payload, canonical=True)
    payload[b"sig"] = hmac.new(secret_key.encode(), signed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(cbor2.dumps(payload)).decode("ascii")


# ------------------------------------------------------------------------- generators

ALPHABETS = ("abc-_.:", "é߀", "日本語", "🙂𝄞", "\u0301\u200d", "\x00\x7f")


def text(rng: random.Random, size: int | None = None) -> str:
    """A string of `size` UTF-8 bytes (random when None) mixing 1- to 4-byte characters."""
    if size is None:
        size = rng.choice((*LENGTHS[:6], rng.randint(0, 40)))
    out: list[str] = []
    used = 0
    while used < size:
        char = rng.choice(rng.choice(ALPHABETS))
        width = len(char.encode())
        if used + width > size:
            char, width = "x", 1
        out.append(char)
        used += width
    return "".join(out)


def floats(rng: random.Random) -> list[float]:
    specials = [0.0, -0.0, 1.0, -1.5, 65504.0, 65505.0, 65520.0, 2.0**-24, 2.0**-25, 2.0**-14]
    specials += [2.0**-149, 2.0**-150, 3.4028234663852886e38, 3.5e38, 1e300, 5e-324, 0.1]
    specials += [math.inf, -math.inf, math.nan, struct.unpack(">d", b"\xff\xf8" + b"\0" * 6)[0]]
    halves = [struct.unpack(">e", rng.randbytes(2))[0] for _ in range(200)]
    singles = [struct.unpack(">f", rng.randbytes(4))[0] for _ in range(200)]
    doubles = [struct.unpack(">d", rng.randbytes(8))[0] for _ in range(200)]
    return specials + halves + singles + doubles


FLOATS = floats(random.Random(0))
FINITE_FLOATS = [number for number in FLOATS if not math.isnan(number)]


def scalar(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(INTS)
    if kind == 1:
        return text(rng)
    if kind == 2:
        return rng.randbytes(rng.choice((0, 1, 23, 24, 255, 256)))
    if kind == 3:
        return rng.choice((*FLOATS, rng.uniform(-1e6, 1e6)))
    return rng.choice((True, False, None))


def value(rng: random.Random, depth: int = 0) -> Any:
    if depth < 2 and rng.random() < 0.4:
        keys: list[str | bytes] = [text(rng, rng.randint(0, 30)) for _ in range(rng.randint(0, 6))]
        keys += [rng.randbytes(rng.randint(0, 30)) for _ in range(rng.randint(0, 4))]
        return {key: value(rng, depth + 1) for key in keys}
    return scalar(rng)


def bits_map(rng: random.Random, size: int) -> dict[str, int]:
    return {text(rng): rng.choice((0, 1, 3, 23, 24, 255)) for _ in range(size)}


def random_grant(rng: random.Random, *, huge: bool = False) -> TokenGrant:
    def maybe(size: int) -> dict[str, int]:
        return bits_map(rng, rng.randint(1, size)) if rng.random() < 0.4 else {}

    channels = bits_map(rng, rng.randint(1, 5))
    if huge:
        channels[text(rng, rng.choice((255, 256, 65535, 65536)))] = READ
    meta: dict[str, Any] = {}
    for _ in range(rng.choice((0, 0, 1, 4))):
        number = rng.choice(FINITE_FLOATS)  # NaN != NaN would fail the grant comparison
        meta[text(rng)] = rng.choice((text(rng), rng.choice(INTS[:-3]), number, True, False, None))
    return TokenGrant(
        issued_at=rng.choice((NOW, *UINTS)),
        ttl_minutes=rng.choice((1, 23, 24, 255, 256, 43200)),
        channels=channels,
        groups=maybe(3),
        uuids=maybe(3),
        channel_patterns=maybe(3),
        group_patterns=maybe(2),
        uuid_patterns=maybe(2),
        meta=meta,
        authorized_uuid=rng.choice((None, text(rng, rng.randint(1, 40)))),
        categories=rng.choice(({}, {"channels": 32}, {"uuids": 96, "channels": 0})),
    )


# ----------------------------------------------------------------------------- dumps


def test_dumps_matches_cbor2_on_head_boundaries() -> None:
    rng = random.Random(1)
    cases: list[Any] = [*INTS, True, False, None]
    cases += [text(rng, size) for size in LENGTHS] + [b"b" * size for size in LENGTHS]
    cases += [{text(rng, size): size} for size in LENGTHS]
    cases += [dict.fromkeys(range(size)) for size in (23, 24)]  # int keys: cbor2's job
    cases += [{str(n): n for n in range(size)} for size in (0, 23, 24, 256)]
    for case in cases:
        for canonical in (False, True):
            assert token_cbor.dumps(case, canonical=canonical) == cbor2.dumps(
                case, canonical=canonical
            ), (case, canonical)


def test_dumps_matches_cbor2_on_floats() -> None:
    rng = random.Random(2)
    for number in floats(rng) + FLOATS:
        for canonical in (False, True):
            assert token_cbor.dumps(number, canonical=canonical) == cbor2.dumps(
                number, canonical=canonical
            ), (number, canonical)


def test_dumps_matches_cbor2_on_random_values() -> None:
    rng = random.Random(3)
    for _ in range(1500):
        case = value(rng)
        assert token_cbor.dumps(case, canonical=True) == cbor2.dumps(case, canonical=True), case
        assert token_cbor.dumps(case) == cbor2.dumps(case), case


def test_canonical_map_order_is_length_then_bytes() -> None:
    encoded = token_cbor.dumps({b"aa": 1, "b": 2, b"b": 3, b"a": 4, "": 5}, canonical=True)
    assert cbor2.loads(encoded) == {"": 5, b"a": 4, b"b": 3, "b": 2, b"aa": 1}
    assert list(cbor2.loads(encoded)) == ["", b"a", b"b", "b", b"aa"]


def test_dumps_hands_other_values_to_cbor2() -> None:
    class Name(str):
        pass

    for case in ([1, "a"], (1,), cbor2.CBORTag(1, 5), {1: "a"}, Name("n"), {"k": [1.5]}):
        assert token_cbor.dumps(case, canonical=True) == cbor2.dumps(case, canonical=True)
    with pytest.raises(UnicodeEncodeError):  # as cbor2 does
        token_cbor.dumps("\udcff")


def test_with_sig_appends_the_sig_entry() -> None:
    sig = bytes(range(32))
    for entries in (0, 1, 22):
        unsigned = {bytes([65 + n]): n for n in range(entries)}
        assert token_cbor.with_sig(token_cbor.dumps(unsigned), sig) == cbor2.dumps(
            {**unsigned, b"sig": sig}
        )
    with pytest.raises(ValueError):
        token_cbor.with_sig(token_cbor.dumps({str(n): n for n in range(23)}), sig)
    with pytest.raises(ValueError):
        token_cbor.with_sig(b"\xa0", b"short")


# ---------------------------------------------------------------------------- tokens


def test_issued_tokens_match_the_cbor2_encoding() -> None:
    rng = random.Random(4)
    for index in range(400):
        grant = random_grant(rng, huge=index % 40 == 0)
        signed, unsigned = token_cbor.encode_grant(grant, access_tokens.TOKEN_VERSION)
        payload = access_tokens._payload(grant)
        assert signed == cbor2.dumps(payload, canonical=True), grant
        assert unsigned == cbor2.dumps(payload), grant
        assert issue_token(grant, SECRET) == reference_token(grant, SECRET), grant


def test_issued_tokens_parse_and_verify(pn: PubNub) -> None:
    rng = random.Random(5)
    for index in range(150):
        grant = random_grant(rng, huge=index % 15 == 0)
        token = issue_token(grant, SECRET)
        parsed = pn.parse_token(token)
        assert parsed["timestamp"] == grant.issued_at
        assert parsed["ttl"] == grant.ttl_minutes
        assert parsed["authorized_uuid"] == grant.authorized_uuid
        assert set(parsed["resources"]["channels"]) == set(grant.channels)
        assert set(parsed["patterns"]["uuids"]) == set(grant.uuid_patterns)
        assert parsed["meta"].keys() == grant.meta.keys()
        if len(token) > MAX_TOKEN_CHARS:
            continue  # too long for a URL: verify_token refuses any such token
        now = grant.issued_at + 1
        access_tokens._issued.clear()  # decode and check the signature, not the cache
        assert verify_token(token, SECRET, now) == grant
        decoded = cbor2.loads(base64.urlsafe_b64decode(token))
        decoded[b"res"][b"chan"][next(iter(grant.channels))] ^= 1
        tampered = base64.urlsafe_b64encode(cbor2.dumps(decoded)).decode("ascii")
        with pytest.raises(TokenSignatureError):
            verify_token(tampered, SECRET, now)
        flipped = bytearray(base64.urlsafe_b64decode(token))
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        with pytest.raises(TokenError):
            verify_token(base64.urlsafe_b64encode(flipped).decode("ascii"), SECRET, now)


def test_backend_shaped_tokens_verify_after_a_restart() -> None:
    write = TokenGrant(
        issued_at=NOW,
        ttl_minutes=120,
        channels={"org.task.t1": READ | WRITE, "org.setup.t1": WRITE},
        authorized_uuid="inst-1",
    )
    read = TokenGrant(issued_at=NOW, ttl_minutes=120, channels={"org.task.t1": READ})
    tokens = {issue_token(grant, SECRET): grant for grant in (write, read)}
    access_tokens._issued.clear()
    for token, grant in tokens.items():
        assert token == reference_token(grant, SECRET)
        assert verify_token(token, SECRET, NOW + 1) == grant


def test_the_signature_is_hmac_sha256_of_the_canonical_payload() -> None:
    for secret in ("", "k", "ключ", "s" * 64, "s" * 65, "long" * 100):
        for body in (b"", b"\xa0", bytes(range(256)) * 3):
            expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
            assert access_tokens._sign(body, secret) == expected


def test_values_past_64_bits_fall_back_to_cbor2() -> None:
    for grant in (
        TokenGrant(issued_at=2**64, ttl_minutes=1, channels={"c": READ}),
        TokenGrant(issued_at=NOW, ttl_minutes=2**70, channels={"c": READ}),
        TokenGrant(issued_at=NOW, ttl_minutes=1, meta={"big": 2**64, "neg": -(2**64) - 1}),
    ):
        with pytest.raises(token_cbor.Unencodable):
            token_cbor.encode_grant(grant, access_tokens.TOKEN_VERSION)
        token = issue_token(grant, SECRET)
        assert token == reference_token(grant, SECRET)
        access_tokens._issued.clear()
        assert verify_token(token, SECRET, NOW) == grant


def test_the_issued_cache_shares_no_dict_with_the_caller() -> None:
    grant = TokenGrant(issued_at=NOW, ttl_minutes=60, channels={"c": READ})
    token = issue_token(grant, SECRET)
    for name in access_tokens._COPIED_FIELDS:  # the empty ones too
        key = "channels" if name == "categories" else "late"
        getattr(grant, name)[key] = READ
    cached = verify_token(token, SECRET, NOW)
    assert cached == TokenGrant(issued_at=NOW, ttl_minutes=60, channels={"c": READ})
    assert all(getattr(cached, name) is not getattr(grant, name) for name in ("groups", "meta"))


@pytest.mark.parametrize(
    ("field", "key", "bad"),
    [
        ("channels", "c", ALL_PERMISSIONS + 1),
        ("channels", "c", True),
        ("groups", "g", -1),
        ("uuid_patterns", 5, READ),
        ("categories", "spaces", READ),
        ("categories", "uuids", "rw"),
        ("meta", "bytes", b"\x00"),
        ("meta", 7, "seven"),
    ],
)
def test_grants_changed_into_invalid_ones_are_refused(field: str, key: Any, bad: Any) -> None:
    grant = TokenGrant(issued_at=NOW, ttl_minutes=60, channels={"c": READ})
    getattr(grant, field)[key] = bad
    with pytest.raises(InvalidGrantError):
        issue_token(grant, SECRET)


def test_the_issued_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_tokens, "_ISSUED_CACHE_SIZE", 8)
    access_tokens._issued.clear()
    tokens = [
        issue_token(TokenGrant(issued_at=NOW, ttl_minutes=1, channels={f"c{n}": READ}), SECRET)
        for n in range(50)
    ]
    assert len(access_tokens._issued) <= 8
    assert tokens[-1] in access_tokens._issued
    assert tokens[0] not in access_tokens._issued
