"""Fixtures for agent-runtime tests: a real local network per test, instances, consumers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.backend.tasks.settings import TaskSettings
from blocks_devnet.network import LocalNetwork
from blocks_network.agent import AgentInstanceHandle, start_agent_instance
from blocks_network.consumer import TaskClient
from blocks_network.types import AgentInstanceOptions

AgentFactory = Callable[..., AgentInstanceHandle]


def devnet_config(data_dir: Path, **overrides: Any) -> DevnetConfig:
    settings: dict[str, Any] = {"port": 0, "data_dir": data_dir, "long_poll_seconds": 5}
    settings.update(overrides)
    return DevnetConfig(**settings)


def fast_safety_net(network: LocalNetwork, **overrides: Any) -> None:
    """Trust presence at once and scan often, so safety-net tests take seconds."""
    values: dict[str, Any] = {
        "scan_interval_seconds": 0.2,
        "offline_startup_grace_seconds": 0.0,
        "expire_grace_seconds": 1.0,
    }
    values.update(overrides)
    settings = TaskSettings(**values)
    network.call(lambda: network.context.tasks.configure(settings))


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LocalNetwork]:
    net = LocalNetwork(devnet_config(tmp_path / "devnet")).start()
    yield net
    net.stop()


@pytest.fixture
def agent_env(network: LocalNetwork, monkeypatch: pytest.MonkeyPatch) -> LocalNetwork:
    """The network, with BLOCKS_CDM_URL and BLOCKS_API_KEY set for the SDK."""
    for key, value in network.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    return network


@pytest.fixture
def start_agent(agent_env: LocalNetwork) -> Iterator[AgentFactory]:
    """``start_agent(agent_name=..., handler=..., **options)`` → a handle stopped at teardown."""
    handles: list[AgentInstanceHandle] = []

    def start(**kwargs: Any) -> AgentInstanceHandle:
        handle = start_agent_instance(AgentInstanceOptions(**kwargs))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop(grace_s=0)


@pytest.fixture
def consumer(agent_env: LocalNetwork) -> Iterator[TaskClient]:
    client = TaskClient.create("free", api_key=agent_env.api_key)
    yield client
    client.destroy()


@pytest.fixture
def raw_control(agent_env: LocalNetwork) -> Iterator[Callable[[AgentInstanceHandle], Any]]:
    """``raw_control(handle)`` → a :class:`RawControl` for that instance, closed at teardown."""
    from tests.sdk.agent.raw_control import RawControl

    made: list[RawControl] = []

    def make(handle: AgentInstanceHandle) -> RawControl:
        raw = RawControl(agent_env, handle["agent_name"], handle["instance_id"])
        made.append(raw)
        return raw

    yield make
    for raw in made:
        raw.close()
