"""An instance survives a restart of the network (same data directory and port)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.agent import start_agent_instance
from blocks_network.consumer import TaskClient, text_part
from blocks_network.errors import RpcError
from blocks_network.handlers.echo import echo_handler
from blocks_network.protocol.channels import control_channel
from blocks_network.types import AgentInstanceOptions
from tests.sdk.agent.conftest import devnet_config

RECONNECT_DEADLINE_S = 40.0


def _echo_once(network: LocalNetwork, text: str, deadline: float) -> bytes:
    """Send one echo task, retrying while no instance is back online."""
    with TaskClient.create("free", api_key=network.api_key) as client:
        while True:
            try:
                session = client.send_message("echo", [text_part(text)])
            except RpcError as exc:
                if "no instance is online" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            with session:
                assert session.wait_for_terminal(timeout=10).state == "completed"
                return session.download_artifact(session.list_artifacts()[0]).data


def _presence_state(network: LocalNetwork, instance_id: str, deadline: float) -> dict[str, object]:
    record = network.call(lambda: network.context.registry.get("echo"))
    assert record is not None
    sub = network.keysets["playground"].subscribe_key
    channel = control_channel(record.agent_id)
    while True:
        state = network.call(
            lambda: network.context.realtime.presence.get_state(sub, instance_id, channel)
        )
        if state.get("instanceId") == instance_id or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def test_instance_serves_again_after_the_network_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "devnet"
    first = LocalNetwork(devnet_config(data_dir)).start()
    port = first.port
    for key, value in first.env().items():
        monkeypatch.setenv(key, value)
    handle = None
    second = None
    try:
        handle = start_agent_instance(AgentInstanceOptions(agent_name="echo", handler=echo_handler))
        assert _echo_once(first, "before", time.monotonic() + 10) == b"Echoed request: before"
        first.stop()
        second = LocalNetwork(devnet_config(data_dir, port=port)).start()
        deadline = time.monotonic() + RECONNECT_DEADLINE_S
        assert _echo_once(second, "after", deadline) == b"Echoed request: after"
        # Presence lives in the network's memory: the instance announced its state again.
        assert _presence_state(second, handle["instance_id"], deadline).get("concurrency") == 1
    finally:
        if handle is not None:
            handle.stop(grace_s=0)
        first.stop()
        if second is not None:
            second.stop()
