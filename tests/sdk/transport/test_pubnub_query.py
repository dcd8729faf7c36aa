"""The identity tail and parameters of the SDK's own PubNub requests (pubnub-wire.md §0)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from blocks_network.transport.pubnub_query import PNSDK, encode_params, identity_query


def test_the_identity_sends_the_token_unencoded_as_the_official_client_does() -> None:
    token = "qEF2AkF0Gmc-_abc+/xyz=="
    query = identity_query("AG-echo-1", token)
    assert query == f"uuid=AG-echo-1&pnsdk={PNSDK.replace('/', '%2F')}&auth={token}"
    # Split on the first "=" only, as the server does: the padding survives.
    assert dict(parse_qsl(query.replace("+", "%2B")))["auth"] == token


def test_a_token_outside_the_base64_alphabet_is_quoted_so_the_query_stays_valid() -> None:
    query = identity_query("u", "a b&c#d")
    assert query.endswith("&auth=a%20b%26c%23d")


def test_no_token_means_no_auth_and_the_user_id_is_quoted() -> None:
    assert (
        identity_query("a user/1", None) == f"uuid=a%20user%2F1&pnsdk={PNSDK.replace('/', '%2F')}"
    )
    assert "auth" not in identity_query("u", "")


def test_params_keep_their_order_and_are_fully_quoted() -> None:
    meta = '{"taskId":"t_1"}'
    assert encode_params({"store": "1", "meta": meta}) == (
        "store=1&meta=%7B%22taskId%22%3A%22t_1%22%7D"
    )
    assert encode_params({}) == ""
