"""Fixtures for consumer tests: a local network on port 0, an echo responder, env vars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_network import TaskClient
from tests.sdk.consumer.responder import Responder

_BLOCKS_VARS = (
    "BLOCKS_CDM_URL",
    "BLOCKS_API_KEY",
    "BLOCKS_SUBSCRIBE_KEY",
    "BLOCKS_PUBLISH_KEY",
    "BLOCKS_BACKEND_URL",
    "ARTIFACT_INLINE_LIMIT_BYTES",
)


def start_network(data_dir: Path, **overrides: Any) -> LocalNetwork:
    settings: dict[str, Any] = {"port": 0, "data_dir": data_dir, "long_poll_seconds": 5}
    settings.update(overrides)
    return LocalNetwork(DevnetConfig(**settings)).start()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LocalNetwork]:
    net = start_network(tmp_path / "devnet")
    yield net
    net.stop()


@pytest.fixture
def agent(network: LocalNetwork) -> Iterator[Responder]:
    """The built-in ``echo`` agent, played by a scriptable responder."""
    responder = Responder(network, "echo")
    yield responder
    responder.stop()
    assert not responder.errors, responder.errors


@pytest.fixture
def blocks_env(network: LocalNetwork, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Only BLOCKS_CDM_URL and BLOCKS_API_KEY set, as the seed samples expect."""
    for name in _BLOCKS_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in network.env().items():
        monkeypatch.setenv(name, value)
    return network.env()


@pytest.fixture
def make_client(blocks_env: dict[str, str]) -> Iterator[Callable[..., TaskClient]]:
    """``make_client(billing_mode="free", **options)``; destroyed at teardown."""
    made: list[TaskClient] = []

    def make(billing_mode: str = "free", **options: Any) -> TaskClient:
        client = TaskClient.create(billing_mode, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.destroy()


@pytest.fixture
def client(make_client: Callable[..., TaskClient]) -> TaskClient:
    return make_client()
