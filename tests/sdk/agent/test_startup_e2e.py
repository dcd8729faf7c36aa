"""Start-up against a real network: registry lookup, auto-registration, fatal auth errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.agent import start_agent_instance
from blocks_network.errors import (
    AgentForcedOfflineError,
    ApiKeyInvalidError,
    ConfigError,
    NetworkError,
)
from blocks_network.handlers.echo import echo_handler
from blocks_network.types import AgentInstanceOptions
from tests.sdk.agent.conftest import AgentFactory, devnet_config


def _options(**overrides: Any) -> AgentInstanceOptions:
    values: dict[str, Any] = {"agent_name": "echo", "handler": echo_handler}
    values.update(overrides)
    return AgentInstanceOptions(**values)


def test_handle_has_every_key(start_agent: AgentFactory, agent_env: LocalNetwork) -> None:
    handle = start_agent(agent_name="echo", handler=echo_handler, instance_id=None)
    assert set(handle) >= {
        "stop",
        "agent_name",
        "instance_id",
        "task_client",
        "publish_terminal",
        "fail_stream",
        "pubnub",
        "cdm_config",
    }
    assert handle.agent_name == handle["agent_name"] == "echo"
    assert handle.instance_id.startswith("AG-echo-")
    assert handle.cdm_config.api_base_url == agent_env.url
    assert handle.pubnub.config.uuid == handle.instance_id


def test_instance_id_option_is_used(start_agent: AgentFactory) -> None:
    wanted = "AG-echo-11111111-2222-4333-8444-555555555555"
    assert (
        start_agent(agent_name="echo", handler=echo_handler, instance_id=wanted).instance_id
        == wanted
    )


def test_stop_twice_is_safe(start_agent: AgentFactory) -> None:
    handle = start_agent(agent_name="echo", handler=echo_handler)
    handle.stop(grace_s=0)
    handle.stop(grace_s=0)
    assert handle.wait(0)


def test_unregistered_agent_is_registered_on_connect_by_the_local_network(
    start_agent: AgentFactory, agent_env: LocalNetwork
) -> None:
    start_agent(agent_name="brand_new", handler=echo_handler)
    record = agent_env.call(lambda: agent_env.context.registry.get("brand_new"))
    assert record is not None and record.billing_mode == "free"


def test_unregistered_agent_without_auto_registration_says_publish_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalNetwork(devnet_config(tmp_path / "d", auto_register_agents=False)) as network:
        for key, value in network.env().items():
            monkeypatch.setenv(key, value)
        with pytest.raises(ConfigError, match="Run 'blocks publish' first"):
            start_agent_instance(_options(agent_name="unpublished"))


def test_missing_api_key_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BLOCKS_API_KEY", raising=False)
    monkeypatch.setenv("BLOCKS_CDM_URL", "http://127.0.0.1:9/config.json")
    with pytest.raises(ConfigError) as info:
        start_agent_instance(_options())
    assert str(info.value) == (
        "BLOCKS_API_KEY is not set: run `blocks devnet` and export the BLOCKS_API_KEY it prints "
        "(or create one with `blocks devnet keys create --user NAME`)"
    )


def test_invalid_api_key_is_fatal(agent_env: LocalNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOCKS_API_KEY", "bk_not_a_real_key")
    with pytest.raises(ApiKeyInvalidError, match="API key invalid or revoked"):
        start_agent_instance(_options())


def test_forced_offline_agent_is_fatal(agent_env: LocalNetwork) -> None:
    agent_env.call(lambda: agent_env.context.registry.set_forced_offline("echo", True))
    with pytest.raises(AgentForcedOfflineError, match="forced offline"):
        start_agent_instance(_options())


def test_unreachable_cdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOCKS_API_KEY", "bk_x")
    monkeypatch.setenv("BLOCKS_CDM_URL", "http://127.0.0.1:9/config.json")
    with pytest.raises(NetworkError, match="could not fetch the Blocks config"):
        start_agent_instance(_options())


def test_card_name_must_match(agent_env: LocalNetwork) -> None:
    card = {
        "identity": {
            "agentName": "other",
            "displayName": "o",
            "description": "d",
            "version": "1",
            "provider": {"organization": "o"},
        },
        "capabilities": {"taskKinds": ["request"]},
    }
    with pytest.raises(
        ConfigError, match=r"identity\.agentName is 'other' but agent_name is 'echo'"
    ):
        start_agent_instance(_options(card=card))


@pytest.mark.parametrize("locked", [False, True], ids=["mutable-config", "locked-config"])
def test_external_pubnub_client_skips_the_cdm(
    agent_env: LocalNetwork, monkeypatch: pytest.MonkeyPatch, locked: bool
) -> None:
    from pubnub.pubnub import PubNub

    from blocks_network.consumer import TaskClient, text_part
    from blocks_network.protocol.control import control_filter_expression
    from tests.support.pubnub_clients import make_config

    instance_id = "AG-echo-99999999-2222-4333-8444-555555555555"
    config = make_config(agent_env.origin, agent_env.keysets["playground"], instance_id)
    # Locked: the mode pubnub asks users to opt in to; assignments after PubNub() are ignored.
    config.disable_config_locking = not locked
    client = PubNub(config)
    monkeypatch.setenv("BLOCKS_CDM_URL", "http://127.0.0.1:9/config.json")  # never fetched
    handle = start_agent_instance(
        _options(pubnub=client, base_url=agent_env.url, instance_id=instance_id, heartbeat_ms=3000)
    )
    try:
        assert handle.cdm_config is None and handle.pubnub is client
        # The instance filter and the presence timing reached the client either way.
        assert client.config.filter_expression == control_filter_expression(instance_id)
        assert (client.config.presence_timeout, client.config.heartbeat_interval) == (20, 3)
        with (
            TaskClient.create(
                "free", api_key=agent_env.api_key, cdm_url=agent_env.cdm_url
            ) as consumer,
            consumer.send_message("echo", [text_part("x")]) as session,
        ):
            assert session.wait_for_terminal(timeout=10).state == "completed"
    finally:
        handle.stop(grace_s=0)
        client.stop()
