"""Fixtures for backend tests: a whole local network on port 0 with its data in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from tests.support.backend_client import BackendClient
from tests.support.task_rpc import Consumer, speed_up

NetworkFactory = Callable[..., LocalNetwork]


@dataclass(frozen=True)
class User:
    """A user of the local network with its own organisation and API key."""

    user_id: str
    api_key: str


def devnet_config(data_dir: Path, **overrides: Any) -> DevnetConfig:
    """Port 0, data under ``data_dir``, short long polls so shutdown is quick."""
    settings: dict[str, Any] = {"port": 0, "data_dir": data_dir, "long_poll_seconds": 5}
    settings.update(overrides)
    return DevnetConfig(**settings)


@pytest.fixture
def network_factory(tmp_path: Path) -> Iterator[NetworkFactory]:
    """``network_factory(**config_overrides)`` → a started network, stopped at teardown.

    Every call uses the same data dir unless ``data_dir`` is given, so stopping one network
    and making another tests a restart; pass distinct dirs to run two at once.
    """
    started: list[LocalNetwork] = []

    def make(**overrides: Any) -> LocalNetwork:
        overrides.setdefault("data_dir", tmp_path / "devnet")
        network = LocalNetwork(devnet_config(**overrides)).start()
        started.append(network)
        return network

    yield make
    for network in started:
        network.stop()


@pytest.fixture
def local_network(network_factory: NetworkFactory) -> LocalNetwork:
    """A running local network (built-in agents and auto-registration on)."""
    return network_factory()


@pytest.fixture
def api(local_network: LocalNetwork) -> Iterator[BackendClient]:
    client = BackendClient(local_network.url)
    yield client
    client.close()


@pytest.fixture
def second_user(local_network: LocalNetwork) -> User:
    """Another user in another organisation (for multi-tenant tests)."""
    return User(*local_network.create_user("second"))


@pytest.fixture
def net(network_factory: NetworkFactory) -> LocalNetwork:
    """A network whose task service runs its timers fast (scanner, pump, grace periods)."""
    network = network_factory(scan_interval_seconds=0.05)
    speed_up(network)
    return network


@pytest.fixture
def consumer(net: LocalNetwork) -> Iterator[Consumer]:
    """A JSON-RPC consumer with the dev API key on :func:`net`."""
    client = Consumer(net)
    yield client
    client.close()
