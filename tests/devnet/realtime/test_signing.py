"""Signature verification against requests signed by the official pubnub client itself."""

from __future__ import annotations

import contextlib
import random
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pubnub import utils as pn_utils
from pubnub.endpoints.presence.heartbeat import Heartbeat
from pubnub.endpoints.pubsub.subscribe import Subscribe
from pubnub.models.consumer.v3.channel import Channel
from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

from blocks_devnet.realtime.signing import (
    parse_query_string,
    request_signature,
    verify_signature,
)

PUB = "pub-c-test"
SUB = "sub-c-test"
SECRET = "sec-c-test"
# A user id with characters the client sends unencoded (the client fails on non-ASCII ones).
USER_ID = "agent:1+x~y"
# A padded base64url token, as the client sends it in `auth`.
TOKEN = "qEF2AkF0GmVT8QBDdHRsGDxDcmVzpURjaGFuoWJjaANDZ3JwoEN1c3KgQ3NwY6A="


@dataclass
class Wire:
    """One request as the local server receives it."""

    method: str
    raw_path: str
    query: list[tuple[str, str]]
    body: bytes

    def verify(self, **overrides: Any) -> bool:
        args: dict[str, Any] = {
            "method": self.method,
            "raw_path": self.raw_path,
            "query": self.query,
            "body": self.body,
            "publish_key": PUB,
            "subscribe_key": SUB,
            "secret_key": SECRET,
        }
        args.update(overrides)
        return verify_signature(**args)

    def param(self, key: str) -> str:
        return dict(self.query)[key]

    def with_param(self, key: str, value: str) -> list[tuple[str, str]]:
        return [(k, value if k == key else v) for k, v in self.query]


@pytest.fixture
def pn() -> Iterator[PubNub]:
    config = PNConfiguration()
    config.publish_key = PUB
    config.subscribe_key = SUB
    config.secret_key = SECRET
    config.user_id = USER_ID
    config.origin = "127.0.0.1:9"
    config.ssl = False
    config.enable_subscribe = False  # no worker thread; nothing here touches the network
    client = PubNub(config)
    client.set_token(TOKEN)
    yield client
    with contextlib.suppress(Exception):  # stop() complains when subscribe is disabled
        client.stop()


def to_wire(endpoint: Any) -> Wire:
    """Build the request exactly as the client's httpx handler sends it."""
    options = endpoint.options()
    options.merge_params_in({})
    url = httpx.URL("http://127.0.0.1:9" + options.path, query=options.query_string.encode())
    path, _, raw_query = url.raw_path.decode("ascii").partition("?")
    data = options.data
    body = data if isinstance(data, bytes) else (data or "").encode("utf-8")
    return Wire(options.method_string, path, parse_query_string(raw_query), body)


def test_get_publish_with_meta_token_and_odd_names(pn: PubNub) -> None:
    endpoint = (
        pn.publish()
        .channel("room 1/ü~*")
        .message({"text": "a&b=c+d ~ 'x' (y) [z] !"})
        .meta({"k": "v w+~"})
        .custom_message_type("chat-msg")
        .ttl(5)
        .should_store(True)
    )
    wire = to_wire(endpoint)
    assert wire.method == "GET"
    assert wire.param("signature").startswith("v2.")
    assert wire.param("auth") == TOKEN
    assert wire.param("uuid") == USER_ID
    assert wire.verify()


def test_post_publish_uses_v1_and_ignores_body(pn: PubNub) -> None:
    wire = to_wire(pn.publish().channel("ch").message({"n": 1}).use_post(True))
    signature = wire.param("signature")
    assert wire.method == "POST"
    assert not signature.startswith("v2.")
    assert signature.endswith("=")  # v1 keeps base64 padding
    assert wire.verify()
    # v1 does not sign the body, so a (compressed or altered) body does not matter.
    assert wire.verify(body=b'{"n": 2}')


def test_post_grant_token_signs_body_v2(pn: PubNub) -> None:
    endpoint = pn.grant_token().channels([Channel.id("ch").read()]).ttl(60).authorized_uuid("u")
    wire = to_wire(endpoint)
    assert wire.method == "POST"
    assert wire.raw_path == f"/v3/pam/{SUB}/grant"
    assert wire.body.startswith(b'{"ttl": 60')
    assert wire.verify()
    assert not wire.verify(body=wire.body.replace(b"60", b"61"))


def test_delete_revoke_token(pn: PubNub) -> None:
    wire = to_wire(pn.revoke_token(TOKEN))
    assert wire.method == "DELETE"
    assert wire.verify()


def test_set_state_and_here_now_with_groups(pn: PubNub) -> None:
    state = pn.set_state().channels(["a", "b c"]).channel_groups(["cg-1"]).state({"mood": "ok ~"})
    assert to_wire(state).verify()
    here_now = pn.here_now().channels(["a"]).channel_groups(["cg:1", "cg 2"])
    assert to_wire(here_now).verify()


def stand_in_subscription_manager(pn: PubNub, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real manager's get_custom_params() returns {}; this avoids its worker thread.
    monkeypatch.setattr(pn, "_subscription_manager", types.SimpleNamespace(get_custom_params=dict))


def test_subscribe_with_pre_encoded_params(pn: PubNub, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in_subscription_manager(pn, monkeypatch)
    endpoint = (
        Subscribe(pn)
        .channels(["ch-1", "ch 2"])
        .channel_groups(["cg:1", "cg 2"])
        .filter_expression("uuid != 'me' && n > 1")
        .state({"a": "b c", "d": [1, 2]})
    )
    wire = to_wire(endpoint)
    assert wire.verify()
    # The client double-encodes these, so only the pre-encoded candidate can match.
    plain = request_signature(
        method=wire.method,
        raw_path=wire.raw_path,
        query=wire.query,
        body=wire.body,
        publish_key=PUB,
        subscribe_key=SUB,
        secret_key=SECRET,
    )
    assert plain != wire.param("signature")


def test_heartbeat_with_state(pn: PubNub, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in_subscription_manager(pn, monkeypatch)
    endpoint = Heartbeat(pn).channels(["ch"]).channel_groups(["cg:1"]).state({"x": "y z"})
    assert to_wire(endpoint).verify()


def test_request_signature_matches_client(pn: PubNub) -> None:
    wire = to_wire(pn.publish().channel("ch").message("hi"))
    computed = request_signature(
        method=wire.method,
        raw_path=wire.raw_path + "?ignored=1",
        query=wire.query,
        body=wire.body,
        publish_key=PUB,
        subscribe_key=SUB,
        secret_key=SECRET,
    )
    assert computed == wire.param("signature")


def test_value_encoding_matches_client_pam_encode() -> None:
    rng = random.Random(7)
    alphabet = "aZ09-_.~!*'()[]/ +&=?#%:;,@$ü€\"{}"
    for _ in range(300):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        params = {"k": value, "timestamp": "1"}
        expected = pn_utils.prepare_pam_arguments(params)
        signed_input = f"GET\n{PUB}\n/p\n{expected}\n"
        wanted = "v2." + pn_utils.sign_sha256(SECRET, signed_input).rstrip("=")
        query = [("k", value), ("timestamp", "1"), ("signature", wanted)]
        assert verify_signature(
            method="GET",
            raw_path="/p",
            query=query,
            body=b"",
            publish_key=PUB,
            subscribe_key=SUB,
            secret_key=SECRET,
        ), value


@pytest.mark.parametrize(
    "change",
    [
        {"secret_key": "other-secret"},
        {"publish_key": "pub-c-other"},
        {"method": "POST"},
        {"raw_path": f"/publish/{PUB}/{SUB}/0/other/0/%22hi%22"},
        {"body": b"x"},
    ],
)
def test_wrong_inputs_fail(pn: PubNub, change: dict[str, Any]) -> None:
    wire = to_wire(pn.publish().channel("ch").message("hi"))
    assert wire.verify()
    assert not wire.verify(**change)


def test_tampered_or_missing_params_fail(pn: PubNub) -> None:
    wire = to_wire(pn.publish().channel("ch").message("hi"))
    assert not wire.verify(query=wire.with_param("uuid", "someone-else"))
    assert not wire.verify(query=wire.with_param("auth", TOKEN[:-1] + "B"))
    assert not wire.verify(query=[*wire.query, ("extra", "1")])
    assert not wire.verify(query=[(k, v) for k, v in wire.query if k != "signature"])
    assert not wire.verify(query=[(k, v) for k, v in wire.query if k != "timestamp"])
    assert not wire.verify(query=[*wire.query, ("signature", wire.param("signature"))])
    assert not wire.verify(query=[*wire.query, ("uuid", USER_ID)])  # duplicate key


def test_v2_signature_on_post_publish_fails(pn: PubNub) -> None:
    get_wire = to_wire(pn.publish().channel("ch").message({"n": 1}))
    post_wire = to_wire(pn.publish().channel("ch").message({"n": 1}).use_post(True))
    v2_style = request_signature(
        method="GET",
        raw_path=post_wire.raw_path,
        query=post_wire.query,
        body=b"",
        publish_key=PUB,
        subscribe_key=SUB,
        secret_key=SECRET,
    )
    assert v2_style.startswith("v2.")
    assert get_wire.verify()
    assert not post_wire.verify(query=post_wire.with_param("signature", v2_style))


def test_garbage_never_raises(pn: PubNub) -> None:
    wire = to_wire(pn.publish().channel("ch").message("hi"))
    rng = random.Random(11)
    garbage = ["", "v2.", "v2.\udcff", "ü" * 50, "\x00", "v2." + "A" * 43, "=" * 44]
    garbage += ["".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(20)) for _ in range(50)]
    for value in garbage:
        assert not wire.verify(query=wire.with_param("signature", value))
    assert not wire.verify(body=b"\xff\xfe not utf-8")
    assert not wire.verify(raw_path="\udcff")
    assert not wire.verify(query=[("timestamp", "\udcff"), ("signature", "v2.x")])
    assert not wire.verify(query=[("k", "\ud800"), ("timestamp", "1"), ("signature", "v2.x")])


def test_parse_query_string_keeps_plus_and_padding() -> None:
    raw = "auth=abc-_%3D%3D==&uuid=a+b&meta=%7B%22k%22%3A%20%22%26%22%7D&flag&&empty="
    assert parse_query_string(raw) == [
        ("auth", "abc-_===="),
        ("uuid", "a+b"),
        ("meta", '{"k": "&"}'),
        ("flag", ""),
        ("empty", ""),
    ]
