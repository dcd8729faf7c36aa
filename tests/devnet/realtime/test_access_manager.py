"""Access Manager v3 end to end: grant, enforce, revoke with the official client."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from pubnub.enums import PNStatusCategory
from pubnub.exceptions import PubNubException
from pubnub.models.consumer.v3.channel import Channel

from blocks_devnet.realtime import access_tokens
from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import SECURE_KEYSET, PubNubFactory
from tests.support.pubnub_clients import RecordingListener, next_item


def grant(
    pubnub_factory: PubNubFactory,
    channels: list[Channel],
    *,
    ttl: int = 60,
    uuid: str | None = None,
) -> str:
    server_client = pubnub_factory("server", SECURE_KEYSET, secret=True)
    builder = server_client.grant_token().channels(channels).ttl(ttl)
    if uuid is not None:
        builder = builder.authorized_uuid(uuid)
    token: str = builder.sync().result.token
    return token


def test_granted_token_parses_and_allows_only_granted_channels(
    pubnub_factory: PubNubFactory,
) -> None:
    token = grant(pubnub_factory, [Channel.id("allowed").read().write()], uuid="alice")
    alice = pubnub_factory("alice", SECURE_KEYSET)
    parsed = alice.parse_token(token)
    assert parsed["resources"]["channels"]["allowed"]["write"] is True
    assert parsed["authorized_uuid"] == "alice"
    alice.set_token(token)
    assert alice.publish().channel("allowed").message("hi").sync().result.timetoken > 0
    with pytest.raises(PubNubException) as info:
        alice.publish().channel("other").message("hi").sync()
    assert info.value.get_status_code() == 403
    body = json.loads(str(info.value).split(": ", 1)[1])
    assert body["payload"]["channels"] == ["other"]


def test_no_token_is_forbidden_and_signed_client_is_privileged(
    pubnub_factory: PubNubFactory,
) -> None:
    anonymous = pubnub_factory("nobody", SECURE_KEYSET)
    with pytest.raises(PubNubException) as info:
        anonymous.publish().channel("c").message(1).sync()
    assert info.value.get_status_code() == 403
    server_client = pubnub_factory("server", SECURE_KEYSET, secret=True)
    assert server_client.publish().channel("c").message(1).sync().result.timetoken > 0


def test_authorized_uuid_must_match(pubnub_factory: PubNubFactory) -> None:
    token = grant(pubnub_factory, [Channel.id("c").write()], uuid="alice")
    mallory = pubnub_factory("mallory", SECURE_KEYSET)
    mallory.set_token(token)
    with pytest.raises(PubNubException) as info:
        mallory.publish().channel("c").message(1).sync()
    assert info.value.get_status_code() == 403


def test_pattern_read_grant_allows_subscribe(pubnub_factory: PubNubFactory) -> None:
    token = grant(pubnub_factory, [Channel.pattern("u\\.org1\\..*").read()])
    reader = pubnub_factory("reader", SECURE_KEYSET)
    reader.set_token(token)
    listener = RecordingListener()
    reader.add_listener(listener)
    reader.subscribe().channels(["u.org1.t1"]).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    pubnub_factory("server", SECURE_KEYSET, secret=True).publish().channel("u.org1.t1").message(
        "x"
    ).sync()
    assert next_item(listener.messages).message == "x"


def test_subscribe_without_read_is_access_denied(pubnub_factory: PubNubFactory) -> None:
    token = grant(pubnub_factory, [Channel.id("other").read()])
    reader = pubnub_factory("reader", SECURE_KEYSET)
    reader.set_token(token)
    listener = RecordingListener()
    reader.add_listener(listener)
    reader.subscribe().channels(["secret"]).execute()
    listener.wait_status(PNStatusCategory.PNAccessDeniedCategory)


def test_revoked_token_stops_working(pubnub_factory: PubNubFactory) -> None:
    token = grant(pubnub_factory, [Channel.id("c").write()])
    writer = pubnub_factory("writer", SECURE_KEYSET)
    writer.set_token(token)
    writer.publish().channel("c").message(1).sync()
    pubnub_factory("server", SECURE_KEYSET, secret=True).revoke_token(token).sync()
    with pytest.raises(PubNubException) as info:
        writer.publish().channel("c").message(2).sync()
    assert info.value.get_status_code() == 403
    assert "revoked" in str(info.value)


def test_bad_ttl_is_400_with_pubnub_body(pubnub_factory: PubNubFactory) -> None:
    server_client = pubnub_factory("server", SECURE_KEYSET, secret=True)
    with pytest.raises(PubNubException) as info:
        server_client.grant_token().channels([Channel.id("c").read()]).ttl(50000).sync()
    assert info.value.get_status_code() == 400
    assert "Invalid ttl" in str(info.value)


def test_unsigned_grant_and_bad_signature_are_forbidden(realtime_server: RealtimeServer) -> None:
    base = f"{realtime_server.url}/v3/pam/{SECURE_KEYSET.subscribe_key}/grant"
    body = json.dumps({"ttl": 5, "permissions": {"resources": {"channels": {"c": 1}}}}).encode()
    for query in ("?uuid=x", "?uuid=x&timestamp=1&signature=v2.bogus"):
        request = urllib.request.Request(base + query, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 403
        assert json.loads(info.value.read())["service"] == "Access Manager"


@pytest.mark.parametrize("token", ["garbage", "AAAA", "x" * 5000, "%00%01"])
def test_garbage_tokens_are_403_and_server_keeps_serving(
    realtime_server: RealtimeServer, token: str
) -> None:
    url = f"{realtime_server.url}/publish/{SECURE_KEYSET.publish_key}/{SECURE_KEYSET.subscribe_key}/0/c/0/1?uuid=u&auth={token}"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=5)
    assert info.value.code == 403
    with urllib.request.urlopen(f"{realtime_server.url}/time/0", timeout=5) as response:
        assert response.status == 200


def test_revoke_answers_in_the_real_shape(pubnub_factory: PubNubFactory) -> None:
    token = grant(pubnub_factory, [Channel.id("c").read()])
    envelope = pubnub_factory("server", SECURE_KEYSET, secret=True).revoke_token(token).sync()
    body = envelope.status.original_response
    assert body == {"status": 200, "data": {"message": "Success"}, "service": "Access Manager"}


def test_revoking_an_expired_token_is_the_real_400(pubnub_factory: PubNubFactory) -> None:
    expired = access_tokens.issue_token(
        access_tokens.TokenGrant(
            issued_at=int(time.time()) - 3600, ttl_minutes=1, channels={"c": 1}
        ),
        SECURE_KEYSET.secret_key,
    )
    server_client = pubnub_factory("server", SECURE_KEYSET, secret=True)
    with pytest.raises(PubNubException) as info:
        server_client.revoke_token(expired).sync()
    assert info.value.get_status_code() == 400
    assert json.loads(info.value._errormsg) == {
        "error": {
            "details": [
                {"location": "token", "locationType": "path", "message": "Token is expired."}
            ],
            "message": "Invalid token",
            "source": "revoke",
        },
        "service": "Access Manager",
        "status": 400,
    }
    with pytest.raises(PubNubException) as garbage:
        server_client.revoke_token("not-a-token").sync()
    assert garbage.value.get_status_code() == 400
