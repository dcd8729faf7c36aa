"""POST /api/v1/auth/agent/connect over real HTTP (protocol.md §5.1)."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_devnet.backend.principal import Principal
from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.channels import control_channel
from blocks_network.protocol.constants import API_PATH_AGENT_CONNECT, WRITE_AFFINITY_HEADER
from tests.devnet.backend.conftest import NetworkFactory, User
from tests.support.backend_client import BackendClient, make_card


def verify(network: LocalNetwork, token: str) -> Principal:
    return network.call(lambda: network.context.jwt.verify(token))


def test_connect_answers_tokens_and_the_control_channel(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    api.publish(local_network.api_key, make_card("weather"), expect=201)
    reply = api.connect(local_network.api_key, "weather", instanceId="AG-weather-1")

    assert reply.status == 201, reply.body
    assert WRITE_AFFINITY_HEADER in reply.headers
    body = reply.body
    assert body["controlChannel"] == control_channel(body["agentId"])
    assert body["agentName"] == body["name"] == "weather"
    assert body["expiresIn"] == local_network.config.access_token_ttl_seconds
    assert body["refreshToken"] and body["pamToken"]
    principal = verify(local_network, body["accessToken"])
    assert principal.kind == "agent"
    assert principal.agent_id == body["agentId"]
    assert principal.instance_id == "AG-weather-1"
    assert principal.org_id == local_network.dev_identity.org_id


def test_connect_updates_scaling_from_the_running_agent(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    api.publish(local_network.api_key, make_card("scaled"), expect=201)
    reply = api.connect(
        local_network.api_key,
        "scaled",
        concurrency=4,
        expectedInstances=3,
        maxPendingBacklog=7,
        maxRunningTimeSec=99,
    )
    assert reply.status == 201, reply.body
    scaling = api.agent("scaled").body["agent"]["scaling"]
    assert scaling == {
        "concurrency": 4,
        "expectedInstances": 3,
        "maxPendingBacklog": 7,
        "maxRunningTimeSec": 99,
    }


def test_unknown_agent_is_registered_on_connect_when_auto_registration_is_on(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.connect(local_network.api_key, "fresh_agent", listing="private")
    assert reply.status == 201, reply.body
    agent = api.agent("fresh_agent", token=local_network.api_key).body["agent"]
    assert agent["billingMode"] == "free"
    assert agent["listing"] == "private"
    assert agent["orgId"] == local_network.dev_identity.org_id
    assert agent["agentId"] == reply.body["agentId"]


def test_unknown_paid_agent_is_not_auto_registered_without_pricing(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.connect(local_network.api_key, "pricey", "paid")
    assert reply.status == 400
    assert "blocks publish" in reply.body["message"]
    assert api.agent("pricey", token=local_network.api_key).status == 404


def test_unknown_agent_is_404_when_auto_registration_is_off(
    network_factory: NetworkFactory,
) -> None:
    network = network_factory(auto_register_agents=False)
    client = BackendClient(network.url)
    try:
        reply = client.connect(network.api_key, "unpublished")
    finally:
        client.close()
    assert reply.status == 404
    assert "blocks publish" in reply.body["error"]


def test_builtin_agents_can_be_served_with_the_dev_key(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.connect(local_network.api_key, "echo")
    assert reply.status == 201, reply.body


@pytest.mark.parametrize("key", ["bk_not_a_real_key", "garbage", None])
def test_bad_or_missing_api_key_is_api_key_invalid(api: BackendClient, key: str | None) -> None:
    reply = (
        api.connect(key, "echo") if key else api.post(API_PATH_AGENT_CONNECT, {"agentName": "echo"})
    )
    assert reply.status == 401
    assert reply.code == "API_KEY_INVALID"


def test_agent_of_another_org_is_forbidden(
    local_network: LocalNetwork, api: BackendClient, second_user: User
) -> None:
    api.publish(local_network.api_key, make_card("mine"), expect=201)
    reply = api.connect(second_user.api_key, "mine")
    assert reply.status == 403
    assert reply.code == "FORBIDDEN"


def test_forced_offline_agent_is_refused(local_network: LocalNetwork, api: BackendClient) -> None:
    api.publish(local_network.api_key, make_card("naughty"), expect=201)
    assert local_network.call(
        lambda: local_network.context.registry.set_forced_offline("naughty", True)
    )
    reply = api.connect(local_network.api_key, "naughty")
    assert reply.status == 403
    assert reply.code == "AGENT_FORCED_OFFLINE"


def test_billing_mode_must_match_the_registered_one(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    api.publish(local_network.api_key, make_card("freebie"), expect=201)
    reply = api.connect(local_network.api_key, "freebie", "paid")
    assert reply.status == 409
    assert reply.code == "BillingModeMismatch"
    assert reply.body["details"] == {"expected": "free", "got": "paid"}


def test_unsupported_protocol_header_is_400(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.post(
        API_PATH_AGENT_CONNECT,
        {"agentName": "echo", "instanceId": "i", "billingMode": "free"},
        token=local_network.api_key,
        protocol="1999-01-01",
    )
    assert reply.status == 400
    assert reply.code == "UNSUPPORTED_PROTOCOL_VERSION"


def test_no_supported_version_in_body_is_400(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.connect(local_network.api_key, "echo", protocolVersions=["1999-01-01"])
    assert reply.status == 400
    assert reply.code == "UNSUPPORTED_PROTOCOL_VERSION"


GOOD: dict[str, Any] = {"agentName": "echo", "instanceId": "AG-echo-1", "billingMode": "free"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"agentName": "my-agent"}, "agentName"),
        ({"agentName": None}, "agentName"),
        ({"agentName": 7}, "agentName"),
        ({"instanceId": None}, "instanceId"),
        ({"instanceId": "has space"}, "instanceId"),
        ({"billingMode": None}, "billingMode"),
        ({"billingMode": "gratis"}, "billingMode"),
        ({"listing": "secret"}, "listing"),
        ({"concurrency": "2"}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"maxRunningTimeSec": 0}, "maxRunningTimeSec"),
        # Stored, these would overflow SQLite when a task is created: the agent is bricked.
        ({"maxRunningTimeSec": 10**30}, "maxRunningTimeSec"),
        ({"concurrency": 10**30}, "concurrency"),
        ({"maxPendingBacklog": 2**63}, "maxPendingBacklog"),
        ({"sdkVersion": 3}, "sdkVersion"),
        ({"protocolVersions": "2026-05-01"}, "protocolVersions"),
    ],
)
def test_bad_connect_fields_are_400_naming_the_field(
    local_network: LocalNetwork, api: BackendClient, change: dict[str, Any], field: str
) -> None:
    body = {**GOOD, **change}
    reply = api.post(API_PATH_AGENT_CONNECT, body, token=local_network.api_key)
    assert reply.status == 400, reply.body
    assert f"'{field}'" in reply.body["message"]


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000, b'{"agentName": NaN}'],
)
def test_malformed_bodies_are_400(
    local_network: LocalNetwork, api: BackendClient, raw: bytes
) -> None:
    reply = api.request("POST", API_PATH_AGENT_CONNECT, raw=raw, token=local_network.api_key)
    assert reply.status == 400
    assert reply.code == "BAD_REQUEST"
