"""Access Manager v3 tokens: the official client's view of them, verification and checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from pubnub.models.consumer.v3.category import Category
from pubnub.models.consumer.v3.channel import Channel
from pubnub.models.consumer.v3.group import Group
from pubnub.models.consumer.v3.uuid import UUID
from pubnub.pubnub import PubNub

from blocks_devnet.realtime import access_tokens
from blocks_devnet.realtime.access_tokens import (
    ALL_PERMISSIONS,
    CREATE,
    DELETE,
    GET,
    JOIN,
    MANAGE,
    READ,
    UPDATE,
    WRITE,
    GrantRequestError,
    InvalidGrantError,
    TokenError,
    TokenExpiredError,
    TokenGrant,
    TokenMalformedError,
    TokenSignatureError,
    check_access,
    denied_resources,
    forbidden_body,
    grant_error_body,
    grant_from_request_body,
    invalid_signature_body,
    issue_token,
    token_error_body,
    verify_token,
)
from tests.support.offline_pubnub import offline_pubnub

SECRET = "sec-c-test"
NOW = 1_700_000_000


@pytest.fixture
def pn() -> Iterator[PubNub]:
    with offline_pubnub(SECRET) as client:
        yield client


def full_grant(**changes: Any) -> TokenGrant:
    fields: dict[str, Any] = {
        "issued_at": NOW,
        "ttl_minutes": 60,
        "channels": {"room": READ | WRITE, "inbox": READ},
        "groups": {"cg": READ | MANAGE},
        "uuids": {"alice": GET | UPDATE},
        "channel_patterns": {"^agent-[0-9]+$": READ, "task-.*": WRITE},
        "group_patterns": {"^cg-.*$": READ},
        "uuid_patterns": {"^u-.*$": GET},
        "meta": {"role": "agent", "n": 3, "ok": True, "x": None, "f": 1.5},
        "authorized_uuid": "alice",
        "categories": {"channels": GET},
    }
    fields.update(changes)
    return TokenGrant(**fields)


def flags(read: bool = False, write: bool = False, manage: bool = False) -> dict[str, bool]:
    return {
        "read": read,
        "write": write,
        "manage": manage,
        "delete": False,
        "get": False,
        "update": False,
        "join": False,
    }


# ---------------------------------------------------------------------- token format


def test_permission_bits() -> None:
    assert (READ, WRITE, MANAGE, DELETE, CREATE, GET, UPDATE, JOIN) == (
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
    )
    assert ALL_PERMISSIONS == 255


def test_official_parse_token_reads_issued_token(pn: PubNub) -> None:
    token = issue_token(full_grant(), SECRET)
    assert len(token) % 4 == 0
    parsed = pn.parse_token(token)
    assert parsed["version"] == 2
    assert parsed["timestamp"] == NOW
    assert parsed["ttl"] == 60
    assert parsed["authorized_uuid"] == "alice"
    assert parsed["meta"] == {"role": "agent", "n": 3, "ok": True, "x": None, "f": 1.5}
    assert parsed["resources"]["channels"] == {
        "room": flags(read=True, write=True),
        "inbox": flags(read=True),
    }
    assert parsed["resources"]["groups"] == {"cg": flags(read=True, manage=True)}
    assert parsed["resources"]["uuids"]["alice"]["get"] is True
    assert parsed["resources"]["uuids"]["alice"]["update"] is True
    assert set(parsed["patterns"]["channels"]) == {"^agent-[0-9]+$", "task-.*"}
    assert parsed["patterns"]["groups"] == {"^cg-.*$": flags(read=True)}
    assert parsed["categories"] == {"channels": {"get": True}}


def test_official_parse_token_without_authorized_uuid(pn: PubNub) -> None:
    token = issue_token(full_grant(authorized_uuid=None, categories={}), SECRET)
    parsed = pn.parse_token(token)
    assert parsed["authorized_uuid"] is None
    assert "categories" not in parsed


def test_token_layout_matches_real_tokens() -> None:
    token = issue_token(full_grant(categories={}), SECRET)
    decoded = cbor2.loads(base64.urlsafe_b64decode(token))
    assert list(decoded) == [b"v", b"t", b"ttl", b"res", b"pat", b"meta", b"uuid", b"sig"]
    assert list(decoded[b"res"]) == [b"chan", b"grp", b"usr", b"spc", b"uuid"]
    assert list(decoded[b"pat"]) == [b"chan", b"grp", b"usr", b"spc", b"uuid"]
    assert decoded[b"res"][b"chan"] == {"room": 3, "inbox": 1}
    assert decoded[b"uuid"] == "alice"
    assert isinstance(decoded[b"sig"], bytes) and len(decoded[b"sig"]) == 32


def test_invalid_grant_fields_are_rejected() -> None:
    with pytest.raises(InvalidGrantError):
        full_grant(ttl_minutes=0)
    with pytest.raises(InvalidGrantError):
        full_grant(channels={"room": 256})
    with pytest.raises(InvalidGrantError):
        full_grant(meta={"bad": b"bytes"})
    with pytest.raises(InvalidGrantError):
        full_grant(meta={"deep": too_deep_meta()})
    with pytest.raises(InvalidGrantError):
        full_grant(authorized_uuid="")
    with pytest.raises(InvalidGrantError):
        full_grant(categories={"spaces": GET})


# ------------------------------------------------------------------------ verification


def test_verify_round_trip() -> None:
    grant = full_grant()
    assert verify_token(issue_token(grant, SECRET), SECRET, NOW + 1) == grant
    assert grant.expires_at == NOW + 3600


def test_verify_round_trip_without_the_issued_cache() -> None:
    grant = full_grant()
    token = issue_token(grant, SECRET)
    access_tokens._issued.clear()  # as in another process, or after a restart
    assert verify_token(token, SECRET, NOW + 1) == grant
    with pytest.raises(TokenExpiredError):
        verify_token(token, SECRET, NOW + 3600)


def test_a_token_issued_here_verifies_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    grant = full_grant()
    token = issue_token(grant, SECRET)
    grant.channels["late-addition"] = ALL_PERMISSIONS  # the caller's dicts are not shared

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an issued token was decoded again")

    monkeypatch.setattr(cbor2, "loads", no_decoding)
    verified = verify_token(token, SECRET, NOW + 1)
    assert "late-addition" not in verified.channels
    assert verified == full_grant()
    # The cache keeps the other checks: another keyset's secret, expiry.
    monkeypatch.undo()
    with pytest.raises(TokenSignatureError):
        verify_token(token, "another-secret", NOW)
    with pytest.raises(TokenExpiredError):
        verify_token(token, SECRET, NOW + 3600)


def test_expiry_boundary() -> None:
    token = issue_token(full_grant(), SECRET)
    assert verify_token(token, SECRET, NOW + 3599.9).ttl_minutes == 60
    with pytest.raises(TokenExpiredError) as caught:
        verify_token(token, SECRET, NOW + 3600)
    assert caught.value.code == "token_expired"


def test_wrong_secret_is_a_signature_error() -> None:
    token = issue_token(full_grant(), SECRET)
    with pytest.raises(TokenSignatureError) as caught:
        verify_token(token, "another-secret", NOW)
    assert caught.value.code == "token_signature_invalid"


def test_tampered_permissions_are_a_signature_error() -> None:
    token = issue_token(full_grant(), SECRET)
    decoded = cbor2.loads(base64.urlsafe_b64decode(token))
    decoded[b"res"][b"chan"]["secret-room"] = ALL_PERMISSIONS
    forged = base64.urlsafe_b64encode(cbor2.dumps(decoded)).decode()
    with pytest.raises(TokenSignatureError):
        verify_token(forged, SECRET, NOW)


def test_non_canonical_forms_are_rejected() -> None:
    token = issue_token(full_grant(ttl_minutes=61), SECRET)
    assert token.endswith("=")
    with pytest.raises(TokenMalformedError):
        verify_token(token.rstrip("="), SECRET, NOW)
    raw = base64.urlsafe_b64decode(token)
    trailing = base64.urlsafe_b64encode(raw + b"\x00").decode()
    with pytest.raises(TokenError):
        verify_token(trailing, SECRET, NOW)


def signed_token(payload: dict[Any, Any]) -> str:
    """A token whose sig is valid for SECRET, whatever its (possibly wrong) layout."""
    body = cbor2.dumps(payload, canonical=True)
    payload = {**payload, b"sig": hmac.new(SECRET.encode(), body, hashlib.sha256).digest()}
    return base64.urlsafe_b64encode(cbor2.dumps(payload)).decode()


@pytest.mark.parametrize(
    "payload",
    [
        {b"v": 1, b"t": NOW, b"ttl": 60, b"res": {}, b"pat": {}, b"meta": {}},
        {b"v": 2, b"t": "now", b"ttl": 60, b"res": {}, b"pat": {}, b"meta": {}},
        {b"v": 2, b"t": NOW, b"ttl": True, b"res": {}, b"pat": {}, b"meta": {}},
        {b"v": 2, b"t": NOW, b"ttl": 60, b"res": [], b"pat": {}, b"meta": {}},
        {b"v": 2, b"t": NOW, b"ttl": 60, b"res": {b"chan": {"a": "rw"}}, b"pat": {}, b"meta": {}},
        {b"v": 2, b"t": NOW, b"ttl": 60, b"res": {b"chan": {1: 1}}, b"pat": {}, b"meta": {}},
        {b"v": 2, b"t": NOW, b"ttl": 60, b"res": {}, b"pat": {}, b"meta": {"a": b"x"}},
        {b"v": 2, b"t": NOW, b"ttl": 60, b"res": {}, b"pat": {}, b"meta": {}, b"uuid": 5},
        {b"v": 2, b"t": NOW, b"ttl": 60, b"res": {}, b"pat": {}},
        {b"\xff": 1},
    ],
)
def test_signed_but_wrong_layout_is_malformed(payload: dict[Any, Any]) -> None:
    with pytest.raises(TokenMalformedError):
        verify_token(signed_token(payload), SECRET, NOW)


def fuzz_inputs() -> list[Any]:
    rng = random.Random(1234)
    token = issue_token(full_grant(), SECRET)
    raw = base64.urlsafe_b64decode(token)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode()

    cases: list[Any] = ["", "=", "====", "not base64!", "ü", "\udcff", "A" * 40_000, None, 42]
    cases += [b64(rng.randbytes(rng.randint(1, 200))) for _ in range(200)]
    cases += [token[: rng.randint(1, len(token) - 1)] for _ in range(100)]
    cases += [b64(raw[: rng.randint(1, len(raw) - 1)]) for _ in range(100)]
    flipped = [bytearray(raw) for _ in range(200)]
    for data in flipped:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    cases += [b64(bytes(data)) for data in flipped]
    cases += [b64(json.dumps({"v": 2}).encode()), b64(b"\x00" * 40)]
    cases += [b64(cbor2.dumps(value)) for value in (1, "s", b"b", [1, 2], None, 1.5, {1: 2})]
    cases += [b64(cbor2.dumps(cbor2.CBORTag(1, 5))), b64(cbor2.dumps({b"sig": b"x" * 32}))]
    cases += [b64(b"\x9f" * 5000), b64(b"\xa1" * 5000), b64(b"\x5b" + b"\xff" * 8)]
    return cases


def test_garbage_only_raises_token_errors() -> None:
    for case in fuzz_inputs():
        with pytest.raises(TokenError):
            verify_token(case, SECRET, NOW)


# ---------------------------------------------------------------------- access checks


def test_exact_and_pattern_permissions() -> None:
    grant = full_grant(
        authorized_uuid=None,
        channel_patterns={
            "^agent-[0-9]+$": READ,
            "task-.*": WRITE,
            "job-[0-9]": READ,
            "alt-a|alt-b": READ,
        },
    )

    def denied(*channels: str, permission: int = READ) -> list[str]:
        return check_access(grant, channels=channels, permission=permission, uuid="anyone")

    assert denied("room", "inbox", "agent-12") == []
    assert denied("room", "inbox", permission=WRITE) == ["inbox"]
    assert denied("room", permission=READ | WRITE) == []
    assert denied("room", permission=MANAGE) == ["room"]
    # Patterns must match the whole name.
    assert denied("agent-12x", "xagent-12", "agent-") == ["agent-12x", "xagent-12", "agent-"]
    assert denied("task-1", permission=WRITE) == []
    assert denied("job-1", "alt-a", "alt-b") == []
    assert denied("job-12", "alt-ab") == ["job-12", "alt-ab"]
    assert denied("my-task-1", permission=WRITE) == ["my-task-1"]
    assert denied("other") == ["other"]


def test_exact_and_pattern_bits_add_up() -> None:
    grant = full_grant(
        authorized_uuid=None, channels={"task-1": READ}, channel_patterns={"task-.*": WRITE}
    )
    assert check_access(grant, channels=["task-1"], permission=READ | WRITE, uuid=None) == []
    assert check_access(grant, channels=["task-2"], permission=READ | WRITE, uuid=None) == [
        "task-2"
    ]


def test_presence_channels_use_base_channel() -> None:
    grant = full_grant(authorized_uuid=None)
    channels = ["room-pnpres", "agent-7-pnpres", "nope-pnpres", "room"]
    assert check_access(grant, channels=channels, permission=READ, uuid=None) == ["nope-pnpres"]
    groups = ["cg-pnpres", "cg-x-pnpres", "zz-pnpres"]
    assert check_access(grant, groups=groups, permission=READ, uuid=None) == ["zz-pnpres"]


def test_groups_are_reported_apart() -> None:
    grant = full_grant(authorized_uuid=None)
    denied = denied_resources(
        grant, channels=["room", "zz"], groups=["cg", "zz", "zz"], permission=READ, uuid=None
    )
    assert denied.channels == ("zz",)
    assert denied.groups == ("zz",)
    assert bool(denied)
    assert not denied_resources(grant, channels=["room"], permission=READ, uuid=None)
    assert check_access(
        grant, channels=["room", "zz"], groups=["cg-1", "qq"], permission=READ, uuid=None
    ) == ["zz", "qq"]


def test_authorized_uuid_must_match() -> None:
    grant = full_grant()
    assert check_access(grant, channels=["room"], permission=READ, uuid="alice") == []
    assert check_access(grant, channels=["room", "room"], permission=READ, uuid="bob") == ["room"]
    assert check_access(grant, groups=["cg"], permission=READ, uuid=None) == ["cg"]


def test_invalid_pattern_in_token_never_matches() -> None:
    grant = full_grant(authorized_uuid=None, channel_patterns={"([": READ, "ok-.*": READ})
    token = issue_token(grant, SECRET)
    verified = verify_token(token, SECRET, NOW)
    assert check_access(verified, channels=["([", "ok-1"], permission=READ, uuid=None) == ["(["]


def test_permission_must_be_a_bitmask() -> None:
    with pytest.raises(ValueError):
        check_access(full_grant(), channels=["room"], permission=0, uuid="alice")


# ------------------------------------------------------------------------- error bodies


def test_forbidden_body_is_the_real_one() -> None:
    assert forbidden_body(["not-permitted-channel"]) == {
        "message": "Forbidden",
        "payload": {"channels": ["not-permitted-channel"]},
        "error": True,
        "service": "Access Manager",
        "status": 403,
    }
    with_groups = forbidden_body(["a"], ["cg"])
    assert with_groups["payload"] == {"channels": ["a"], "channel-groups": ["cg"]}
    assert forbidden_body([], ["cg"])["payload"] == {"channel-groups": ["cg"]}


def test_invalid_signature_body() -> None:
    assert invalid_signature_body() == {
        "message": "Invalid Signature",
        "error": True,
        "service": "Access Manager",
        "status": 403,
    }


def test_token_error_body() -> None:
    with pytest.raises(TokenExpiredError) as caught:
        verify_token(issue_token(full_grant(), SECRET), SECRET, NOW + 10**6)
    body = token_error_body(caught.value)
    assert body["status"] == 403
    assert body["service"] == "Access Manager"
    assert body["error"]["message"] == "Token is expired"
    assert body["error"]["source"] == "authz"
    assert body["error"]["details"][0]["location"] == "auth"
    assert "grant_token" in body["error"]["details"][0]["message"]
    json.dumps(body)


# ---------------------------------------------------------------------- grant requests


def test_grant_body_from_official_client(pn: PubNub) -> None:
    endpoint = (
        pn.grant_token()
        .ttl(120)
        .channels([Channel.id("room").read().write(), Channel.pattern("^agent-.*$").read()])
        .groups([Group.id("cg").read().manage()])
        .uuids([UUID.id("alice").get().update(), UUID.pattern("^u-.*$").get()])
        .categories([Category.channels().get()])
        .meta({"role": "agent", "n": 1})
        .authorized_uuid("alice")
    )
    body = json.loads(endpoint.build_data())
    grant = grant_from_request_body(body, NOW + 0.7)
    assert grant == TokenGrant(
        issued_at=NOW,
        ttl_minutes=120,
        channels={"room": READ | WRITE},
        groups={"cg": READ | MANAGE},
        uuids={"alice": GET | UPDATE},
        channel_patterns={"^agent-.*$": READ},
        uuid_patterns={"^u-.*$": GET},
        meta={"role": "agent", "n": 1},
        authorized_uuid="alice",
        categories={"channels": GET},
    )
    parsed = pn.parse_token(issue_token(grant, SECRET))
    assert parsed["resources"]["channels"]["room"]["write"] is True
    assert parsed["authorized_uuid"] == "alice"


def test_spaces_and_users_fold_into_channels_and_uuids() -> None:
    body = {
        "ttl": 5,
        "permissions": {
            "resources": {"channels": {"a": READ}, "spaces": {"a": WRITE, "b": READ}},
            "patterns": {"users": {"^u$": GET}},
            "meta": {},
        },
    }
    grant = grant_from_request_body(body, NOW)
    assert grant.channels == {"a": READ | WRITE, "b": READ}
    assert grant.uuid_patterns == {"^u$": GET}
    assert grant.authorized_uuid is None


@pytest.mark.parametrize("ttl", [0, 43201, -1, "0", "-1", "6e1", " 60", "60.0", 60.0, True, None])
def test_bad_ttl_gets_the_real_400(ttl: object) -> None:
    body: dict[str, Any] = {"ttl": ttl, "permissions": {"resources": {"channels": {"a": 1}}}}
    if ttl is None:
        del body["ttl"]
    with pytest.raises(GrantRequestError) as caught:
        grant_from_request_body(body, NOW)
    assert caught.value.status == 400
    assert caught.value.body == {
        "error": {
            "message": "Invalid ttl",
            "source": "grant",
            "details": [
                {
                    "message": "Range should be 1 to 43200 minute(s).",
                    "location": "ttl",
                    "locationType": "body",
                }
            ],
        },
        "service": "Access Manager",
        "status": 400,
    }


def too_deep_meta() -> object:
    value: object = 1
    for _ in range(20):
        value = {"a": [value]}
    return value


def test_ttl_as_a_string_of_digits_is_accepted() -> None:
    # The real service takes "15" as 15 minutes.
    body = {"ttl": "15", "permissions": {"resources": {"channels": {"a": 1}}}}
    assert grant_from_request_body(body, NOW).ttl_minutes == 15


def test_nested_meta_is_accepted_and_survives_the_token() -> None:
    meta = {"org": {"id": "o1", "tags": ["a", {"b": None}]}, "n": 1.5}
    body = {"ttl": 5, "permissions": {"resources": {"channels": {"a": 1}}, "meta": meta}}
    grant = grant_from_request_body(body, NOW)
    assert grant.meta == meta
    assert verify_token(issue_token(grant, SECRET), SECRET, NOW).meta == meta


def test_ttl_bounds_are_inclusive() -> None:
    for ttl in (1, 43200):
        body = {"ttl": ttl, "permissions": {"resources": {"channels": {"a": 1}}}}
        assert grant_from_request_body(body, NOW).ttl_minutes == ttl


@pytest.mark.parametrize(
    ("body", "message", "location"),
    [
        (None, "Invalid request body", "body"),
        ([1], "Invalid request body", "body"),
        ({"ttl": 5}, "Invalid permissions", "permissions"),
        ({"ttl": 5, "permissions": []}, "Invalid permissions", "permissions"),
        ({"ttl": 5, "permissions": {}}, "Invalid permissions", "permissions"),
        (
            {"ttl": 5, "permissions": {"resources": {"channels": {}}, "patterns": {}}},
            "Invalid permissions",
            "permissions",
        ),
        (
            {"ttl": 5, "permissions": {"resources": []}},
            "Invalid permissions",
            "permissions.resources",
        ),
        (
            {"ttl": 5, "permissions": {"resources": {"channels": ["a"]}}},
            "Invalid permissions",
            "permissions.resources.channels",
        ),
        (
            {"ttl": 5, "permissions": {"resources": {"groups": {"g": 256}}}},
            "Invalid permissions",
            "permissions.resources.groups",
        ),
        (
            {"ttl": 5, "permissions": {"resources": {"uuids": {"u": True}}}},
            "Invalid permissions",
            "permissions.resources.uuids",
        ),
        (
            {"ttl": 5, "permissions": {"patterns": {"channels": {"([": 1}}}},
            "Invalid RegExp",
            "permissions.patterns.channels",
        ),
        (
            {"ttl": 5, "permissions": {"categories": {"spaces": 32}}},
            "Invalid permissions",
            "permissions.categories",
        ),
        (
            {"ttl": 5, "permissions": {"resources": {"channels": {"a": 1}}, "meta": []}},
            "Invalid meta",
            "permissions.meta",
        ),
        (
            {
                "ttl": 5,
                "permissions": {
                    "resources": {"channels": {"a": 1}},
                    "meta": {"a": too_deep_meta()},
                },
            },
            "Invalid meta",
            "permissions.meta",
        ),
        (
            {"ttl": 5, "permissions": {"resources": {"channels": {"a": 1}}, "uuid": ""}},
            "Invalid uuid",
            "permissions.uuid",
        ),
        (
            {"ttl": 5, "permissions": {"resources": {"channels": {"a": 1}}, "uuid": 7}},
            "Invalid uuid",
            "permissions.uuid",
        ),
    ],
)
def test_bad_grant_bodies_get_400(body: object, message: str, location: str) -> None:
    with pytest.raises(GrantRequestError) as caught:
        grant_from_request_body(body, NOW)
    error = caught.value.body
    assert error["status"] == 400
    assert error["service"] == "Access Manager"
    assert error["error"]["message"] == message
    assert error["error"]["source"] == "grant"
    assert error["error"]["details"][0]["location"] == location
    assert error["error"]["details"][0]["locationType"] == "body"
    assert str(caught.value) == error["error"]["details"][0]["message"]


def test_grant_error_body_shape() -> None:
    assert grant_error_body("Invalid request body", "Not JSON.", "body") == {
        "error": {
            "message": "Invalid request body",
            "source": "grant",
            "details": [{"message": "Not JSON.", "location": "body", "locationType": "body"}],
        },
        "service": "Access Manager",
        "status": 400,
    }
