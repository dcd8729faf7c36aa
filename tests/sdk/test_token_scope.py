"""Reading what an Access Manager token grants, without its secret (grouping sessions)."""

from __future__ import annotations

import base64

import cbor2

from blocks_devnet.realtime.access_tokens import (
    READ,
    WRITE,
    TokenGrant,
    check_access,
    issue_token,
)
from blocks_network.protocol.token_scope import parse_token_scope

SECRET = "sec-c-test"


def _token(**grant: object) -> str:
    fields: dict[str, object] = {"issued_at": 1_700_000_000, "ttl_minutes": 60, **grant}
    return issue_token(TokenGrant(**fields), SECRET)  # type: ignore[arg-type]


def test_exact_channels_patterns_and_lifetime_are_read() -> None:
    token = _token(
        channels={"u.o.t1": READ, "u.o.w": WRITE},
        channel_patterns={r"^u\.o\.[^.]+$": READ},
        authorized_uuid="me",
    )
    scope = parse_token_scope(token)
    assert scope is not None
    assert scope.expires_at == 1_700_000_000 + 3600 and scope.authorized_uuid == "me"
    assert scope.reads("u.o.t1") and scope.reads("u.o.t2") and scope.reads("u.o.t2-pnpres")
    assert scope.reads("u.o.w")  # the pattern grants read on it too
    assert not scope.reads("u.other.t1") and not scope.reads("u.o.t1.setup")
    assert scope.reads_all(["u.o.a", "u.o.b"]) and not scope.reads_all(["u.o.a", "x"])


def test_patterns_match_whole_names_as_the_realtime_server_does() -> None:
    # Unanchored on purpose: a search would match both names below.
    grant = TokenGrant(issued_at=0, ttl_minutes=60, channel_patterns={r"u\.o\..*": READ})
    scope = parse_token_scope(issue_token(grant, SECRET))
    assert scope is not None
    for channel in ("u.o.t", "xu.o.t", "u.ox.t"):
        server_reads = not check_access(grant, channels=[channel], permission=READ, uuid=None)
        assert scope.reads(channel) is server_reads, channel
    assert scope.reads("u.o.t") and not scope.reads("xu.o.t")


def test_a_write_only_grant_does_not_read() -> None:
    scope = parse_token_scope(_token(channels={"u.o.t": WRITE}))
    assert scope is not None and not scope.reads("u.o.t")


def test_unpadded_tokens_are_read_and_anything_else_is_none() -> None:
    token = _token(channels={"u.o.t": READ})
    unpadded = parse_token_scope(token.rstrip("="))
    assert unpadded is not None and unpadded.reads("u.o.t")
    not_v2 = base64.urlsafe_b64encode(cbor2.dumps({b"v": 1, b"t": 1, b"ttl": 1})).decode()
    wrong_types = base64.urlsafe_b64encode(cbor2.dumps({b"v": 2, b"t": "1", b"ttl": 1})).decode()
    bad_bits = base64.urlsafe_b64encode(
        cbor2.dumps({b"v": 2, b"t": 1, b"ttl": 1, b"res": {b"chan": {b"c": "x"}}})
    ).decode()
    for junk in (None, "", "not-a-token!", "AAAA", not_v2, wrong_types, bad_bits, "x" * 40000):
        assert parse_token_scope(junk) is None, junk
