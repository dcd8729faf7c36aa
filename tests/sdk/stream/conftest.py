"""Fixtures for SDK-level stream tests: a local network per test, agents and a consumer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_network import TaskClient
from blocks_network.agent import AgentInstanceHandle, start_agent_instance
from blocks_network.types import AgentInstanceOptions
from tests.support.backend_client import BackendClient

AgentFactory = Callable[..., AgentInstanceHandle]

_BLOCKS_VARS = (
    "BLOCKS_CDM_URL",
    "BLOCKS_API_KEY",
    "BLOCKS_SUBSCRIBE_KEY",
    "BLOCKS_PUBLISH_KEY",
    "BLOCKS_BACKEND_URL",
    "STREAM_BUNDLE_SIZE",
    "STREAM_MAX_LATENCY_MS",
    "STREAM_MAX_MESSAGE_SIZE",
)


def stream_card(
    agent_name: str, streams: dict[str, Any] | None = None, *, pipe: bool = False
) -> dict[str, Any]:
    """A valid card; ``pipe`` allows pipe tasks (needed for named, inbound or shared streams)."""
    card: dict[str, Any] = {
        "identity": {
            "agentName": agent_name,
            "displayName": agent_name.replace("_", " ").title(),
            "description": f"The {agent_name} stream test agent.",
            "version": "1.0.0",
            "provider": {"organization": "Tests"},
        },
        "capabilities": {"taskKinds": ["request", "pipe"] if pipe else ["request"]},
        "io": {
            "inputs": [
                {
                    "id": "text",
                    "description": "Input.",
                    "contentType": "text/plain",
                    "required": True,
                }
            ],
            "outputs": [{"id": "result", "contentType": "text/plain", "guaranteed": False}],
        },
        "tags": [{"id": "testing", "name": "Testing"}],
    }
    if streams is not None:
        card["streams"] = streams
    return card


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LocalNetwork]:
    config = DevnetConfig(port=0, data_dir=tmp_path / "devnet", long_poll_seconds=5)
    with LocalNetwork(config) as net:
        yield net


@pytest.fixture
def blocks_env(network: LocalNetwork, monkeypatch: pytest.MonkeyPatch) -> LocalNetwork:
    """Only BLOCKS_CDM_URL and BLOCKS_API_KEY set, as the seed samples expect."""
    for name in _BLOCKS_VARS:
        monkeypatch.delenv(name, raising=False)
    for key, value in network.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    return network


@pytest.fixture
def start_agent(blocks_env: LocalNetwork) -> Iterator[AgentFactory]:
    """``start_agent(agent_name=..., handler=..., card=...)`` → a handle stopped at teardown."""
    handles: list[AgentInstanceHandle] = []

    def start(**kwargs: Any) -> AgentInstanceHandle:
        kwargs.setdefault("card", stream_card(kwargs["agent_name"]))
        # As `blocks publish` does: the registry holds the card (its streams decide whether
        # a task streams by default).
        api = BackendClient(blocks_env.url)
        try:
            reply = api.publish(blocks_env.api_key, kwargs["card"], "free", listing="public")
        finally:
            api.close()
        assert reply.status in (200, 201), reply.body
        handle = start_agent_instance(AgentInstanceOptions(**kwargs))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop(grace_s=0)


@pytest.fixture
def client(blocks_env: LocalNetwork) -> Iterator[TaskClient]:
    consumer = TaskClient.create("free", api_key=blocks_env.api_key)
    yield consumer
    consumer.destroy()
