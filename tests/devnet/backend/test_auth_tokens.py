"""Consumer-token exchange and rotating refresh (protocol.md §5.2, §5.3) over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.constants import (
    API_PATH_AGENT_REFRESH,
    API_PATH_CONSUMER_TOKEN,
    API_PATH_REGISTRY_AGENTS,
    API_PATH_RPC,
    WRITE_AFFINITY_HEADER,
)
from tests.devnet.backend.conftest import User
from tests.devnet.fuzz.raw_http import RawRequest, send
from tests.support.backend_client import BackendClient, make_card


def refresh(
    api: BackendClient, token: str, *, key: str | None = None, protocol: str | None = None
) -> Any:
    return api.post(API_PATH_AGENT_REFRESH, {"refreshToken": token}, token=key, protocol=protocol)


# --- consumer-token ---------------------------------------------------------------------------


def test_consumer_token_exchanges_an_api_key_for_a_jwt(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.post(API_PATH_CONSUMER_TOKEN, {"apiKey": local_network.api_key}, protocol=None)
    assert reply.status == 200, reply.body
    assert WRITE_AFFINITY_HEADER in reply.headers
    assert reply.body["userId"] == local_network.dev_identity.user_id
    assert reply.body["expiresIn"] == local_network.config.access_token_ttl_seconds
    assert reply.body["refreshToken"]
    principal = local_network.call(
        lambda: local_network.context.jwt.verify(reply.body["accessToken"])
    )
    assert principal.kind == "consumer"
    assert principal.user_id == local_network.dev_identity.user_id


def test_consumer_token_ignores_the_protocol_header(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.post(
        API_PATH_CONSUMER_TOKEN, {"apiKey": local_network.api_key}, protocol="1999-01-01"
    )
    assert reply.status == 200


@pytest.mark.parametrize("key", ["bk_wrong", "not-a-key", "bk_" + "x" * 600])
def test_consumer_token_with_a_bad_key_is_api_key_invalid(api: BackendClient, key: str) -> None:
    reply = api.post(API_PATH_CONSUMER_TOKEN, {"apiKey": key}, protocol=None)
    assert reply.status == 401
    assert reply.code == "API_KEY_INVALID"


@pytest.mark.parametrize("body", [{}, {"apiKey": ""}, {"apiKey": 12}, {"apiKey": None}])
def test_consumer_token_without_a_key_is_400(api: BackendClient, body: dict[str, Any]) -> None:
    reply = api.post(API_PATH_CONSUMER_TOKEN, body, protocol=None)
    assert reply.status == 400
    assert "'apiKey'" in reply.body["message"]


def test_consumer_token_with_malformed_json_is_400(api: BackendClient) -> None:
    reply = api.request("POST", API_PATH_CONSUMER_TOKEN, raw=b'{"apiKey": ', protocol=None)
    assert reply.status == 400
    assert reply.code == "BAD_REQUEST"


def test_a_revoked_key_stops_working(
    local_network: LocalNetwork, api: BackendClient, second_user: User
) -> None:
    assert local_network.call(
        lambda: local_network.context.identity.revoke_api_key(second_user.api_key)
    )
    reply = api.post(API_PATH_CONSUMER_TOKEN, {"apiKey": second_user.api_key}, protocol=None)
    assert reply.code == "API_KEY_INVALID"


# --- refresh ----------------------------------------------------------------------------------


def test_consumer_refresh_rotates_and_needs_no_protocol_header(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    first = api.consumer_token(local_network.api_key)
    reply = refresh(api, first["refreshToken"])
    assert reply.status == 200, reply.body
    assert WRITE_AFFINITY_HEADER in reply.headers
    assert reply.body["refreshToken"] != first["refreshToken"]
    assert reply.body["userId"] == first["userId"]
    assert reply.body["expiresIn"] == local_network.config.access_token_ttl_seconds
    principal = local_network.call(
        lambda: local_network.context.jwt.verify(reply.body["accessToken"])
    )
    assert principal.kind == "consumer"
    # The successor works in turn.
    assert refresh(api, reply.body["refreshToken"]).status == 200


def test_reusing_a_rotated_refresh_token_is_refused_and_kills_the_family(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    first = api.consumer_token(local_network.api_key)
    successor = refresh(api, first["refreshToken"]).body["refreshToken"]

    reuse = refresh(api, first["refreshToken"])
    assert reuse.status == 401
    assert reuse.code == "REFRESH_TOKEN_INVALID"
    # A replayed token may have been stolen: its whole rotation family is revoked.
    assert refresh(api, successor).code == "REFRESH_TOKEN_INVALID"


def test_agent_refresh_with_the_api_key_keeps_the_agent_identity(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    connected = api.connect(local_network.api_key, "echo", instanceId="AG-echo-7").body
    reply = refresh(
        api, connected["refreshToken"], key=local_network.api_key, protocol="2026-05-01"
    )
    assert reply.status == 200, reply.body
    principal = local_network.call(
        lambda: local_network.context.jwt.verify(reply.body["accessToken"])
    )
    assert (principal.kind, principal.agent_name, principal.instance_id) == (
        "agent",
        "echo",
        "AG-echo-7",
    )


def test_agent_refresh_checks_the_protocol_header(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    connected = api.connect(local_network.api_key, "echo").body
    reply = refresh(
        api, connected["refreshToken"], key=local_network.api_key, protocol="1999-01-01"
    )
    assert reply.status == 400
    assert reply.code == "UNSUPPORTED_PROTOCOL_VERSION"


def test_refresh_with_another_users_key_is_refused(
    local_network: LocalNetwork, api: BackendClient, second_user: User
) -> None:
    first = api.consumer_token(local_network.api_key)
    reply = refresh(api, first["refreshToken"], key=second_user.api_key)
    assert reply.status == 401
    assert reply.code == "REFRESH_TOKEN_INVALID"


def test_refresh_with_a_bad_api_key_is_api_key_invalid(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    first = api.consumer_token(local_network.api_key)
    reply = refresh(api, first["refreshToken"], key="bk_revoked")
    assert reply.status == 401
    assert reply.code == "API_KEY_INVALID"


def test_refresh_of_a_forced_offline_agent_is_refused(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    api.publish(local_network.api_key, make_card("offline_soon"), expect=201)
    connected = api.connect(local_network.api_key, "offline_soon").body
    local_network.call(
        lambda: local_network.context.registry.set_forced_offline("offline_soon", True)
    )
    reply = refresh(api, connected["refreshToken"], key=local_network.api_key)
    assert reply.status == 403
    assert reply.code == "AGENT_FORCED_OFFLINE"


def test_refresh_of_a_deleted_agent_is_invalid(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    api.publish(local_network.api_key, make_card("short_lived"), expect=201)
    connected = api.connect(local_network.api_key, "short_lived").body
    local_network.call(lambda: local_network.context.registry.delete("short_lived"))
    reply = refresh(api, connected["refreshToken"], key=local_network.api_key)
    assert reply.code == "REFRESH_TOKEN_INVALID"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"refreshToken": "rt_unknown"}, 401, "REFRESH_TOKEN_INVALID"),
        ({}, 400, "BAD_REQUEST"),
        ({"refreshToken": 5}, 400, "BAD_REQUEST"),
        ({"refreshToken": ["a"]}, 400, "BAD_REQUEST"),
    ],
)
def test_bad_refresh_bodies(
    api: BackendClient, body: dict[str, Any], status: int, code: str
) -> None:
    reply = api.post(API_PATH_AGENT_REFRESH, body, protocol=None)
    assert (reply.status, reply.code) == (status, code)


def test_a_bearer_that_is_not_ascii_is_a_401_not_a_crash(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    """Non-ASCII header bytes reach the route as surrogates; no verifier may see them."""
    for path, method in ((API_PATH_RPC, b"POST"), (API_PATH_REGISTRY_AGENTS, b"DELETE")):
        answer = send(
            local_network.port,
            RawRequest(
                method,
                tuple(path.strip("/").encode().split(b"/")),
                headers=((b"Authorization", b"Bearer \xff\xfe"),),
                body=b"{}",
            ),
        )
        assert answer.status == 401
        body = answer.json()
        error = body["error"]["data"] if path == API_PATH_RPC else body  # JSON-RPC envelope
        assert error["code"] == "TOKEN_INVALID"
    # Optional auth reads it as anonymous, as any other bad bearer.
    listed = send(
        local_network.port,
        RawRequest(
            b"GET",
            tuple(API_PATH_REGISTRY_AGENTS.strip("/").encode().split(b"/")),
            query=((b"agentName", b"echo"),),
            headers=((b"Authorization", b"Bearer \xff\xfe"),),
        ),
    )
    assert listed.status == 200
