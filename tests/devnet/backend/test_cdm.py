"""config.json, and the official pubnub client on the keyset it names with a connect token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from pubnub.enums import PNStatusCategory
from pubnub.exceptions import PubNubException
from pubnub.pubnub import PubNub

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.cdm import CdmConfig
from tests.support.backend_client import BackendClient, make_card
from tests.support.pubnub_clients import RecordingListener, make_config, next_item


def test_config_json_names_both_keysets_the_api_and_the_realtime_origin(
    local_network: LocalNetwork, api: BackendClient
) -> None:
    reply = api.get("/config.json", protocol=None)
    assert reply.status == 200
    config = CdmConfig.from_wire(reply.body)
    for name in ("playground", "network"):
        keyset = local_network.keysets[name]
        assert reply.body[name] == {
            "publishKey": keyset.publish_key,
            "subscribeKey": keyset.subscribe_key,
        }
    assert config.api_base_url == local_network.url
    assert reply.body["realtime"] == {"origin": local_network.origin, "ssl": False}
    assert api.get("/api/v1/cdm", protocol=None).body == reply.body


def test_config_json_uses_the_host_the_client_used(api: BackendClient) -> None:
    body = api.get("/config.json", protocol=None, headers={"Host": "devbox.local:9999"}).body
    assert body["api"]["baseUrl"] == "http://devbox.local:9999"
    assert body["realtime"]["origin"] == "devbox.local:9999"


@pytest.fixture
def clients() -> Iterator[list[PubNub]]:
    made: list[PubNub] = []
    yield made
    for client in made:
        with contextlib.suppress(Exception):
            client.unsubscribe_all()
        client.stop()


def _client(
    network: LocalNetwork, environment: str, user_id: str, clients: list[PubNub], token: str | None
) -> PubNub:
    client = PubNub(make_config(network.origin, network.keysets[environment], user_id))
    if token is not None:
        client.set_token(token)
    clients.append(client)
    return client


def _subscribe(client: PubNub, channel: str) -> RecordingListener:
    listener = RecordingListener()
    client.add_listener(listener)
    client.subscribe().channels([channel]).execute()
    return listener


def test_control_token_from_connect_works_with_the_official_client(
    local_network: LocalNetwork, api: BackendClient, clients: list[PubNub]
) -> None:
    api.publish(
        local_network.api_key, make_card("market"), "paid", pricing={"pricePerTask": 1}, expect=201
    )
    instance_id = "AG-market-00000000-0000-4000-8000-000000000001"
    connected: dict[str, Any] = api.connect(
        local_network.api_key, "market", "paid", instanceId=instance_id
    ).body
    channel = connected["controlChannel"]

    agent = _client(local_network, "network", instance_id, clients, connected["pamToken"])
    listener = _subscribe(agent, channel)
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    agent.set_state().channels([channel]).state(
        {"instanceId": instance_id, "activeTasks": 0}
    ).sync()

    start = {"type": "StartTask", "taskId": "t_1", "agentName": "market"}
    local_network.call(
        lambda: local_network.context.publish(
            "network", channel, start, meta={"instance": instance_id}
        )
    )
    assert next_item(listener.messages).message == start

    # The control token only reads: an instance cannot forge control messages.
    with pytest.raises(PubNubException) as denied:
        agent.publish().channel(channel).message({"type": "StartTask"}).sync()
    assert denied.value.get_status_code() == 403


def test_control_channel_is_denied_without_a_token(
    local_network: LocalNetwork, api: BackendClient, clients: list[PubNub]
) -> None:
    connected = api.connect(local_network.api_key, "echo").body
    intruder = _client(local_network, "playground", "intruder", clients, None)
    listener = _subscribe(intruder, connected["controlChannel"])
    listener.wait_status(PNStatusCategory.PNAccessDeniedCategory)


def test_control_token_is_bound_to_its_keyset(
    local_network: LocalNetwork, api: BackendClient, clients: list[PubNub]
) -> None:
    connected = api.connect(
        local_network.api_key, "echo", instanceId="AG-echo-x"
    ).body  # free → playground
    wrong_keyset = _client(local_network, "network", "AG-echo-x", clients, connected["pamToken"])
    listener = _subscribe(wrong_keyset, connected["controlChannel"])
    listener.wait_status(PNStatusCategory.PNAccessDeniedCategory)
