"""The kit's classes in-process: agent readiness, publishing, teardown, environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_network import BackendError, ClosedError
from blocks_network.testing import (
    AgentRunner,
    BlocksTestNetwork,
    artifact_json,
    artifact_texts,
    send_and_wait,
)
from blocks_network.types import StartTaskMessage, TaskContext


def card(name: str, streams: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "identity": {
            "agentName": name,
            "displayName": name,
            "description": "A testing-kit test agent.",
            "version": "1.0.0",
            "provider": {"organization": "Tests"},
        },
        "capabilities": {"taskKinds": ["request"]},
        "io": {
            "inputs": [
                {
                    "id": "text",
                    "description": "Text.",
                    "contentType": "text/plain",
                    "required": True,
                }
            ],
            "outputs": [{"id": "out", "contentType": "text/plain", "guaranteed": True}],
        },
        "tags": [{"id": "kit", "name": "Kit"}],
    }
    if streams:
        document["streams"] = streams
    return document


def upper(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    return {
        "artifacts": [{"data": task.request_parts[0]["text"].upper(), "mimeType": "text/plain"}]
    }


@pytest.fixture
def runner(blocks_network: BlocksTestNetwork) -> Iterator[AgentRunner]:
    agents = AgentRunner(blocks_network)
    yield agents
    agents.stop_all()


def test_a_task_sent_right_after_start_is_taken(runner: AgentRunner, blocks_client: Any) -> None:
    for i in range(3):  # restarting an agent of the same name, task right after each start
        agent = runner.start(upper, agent_name="kit_upper")
        session = send_and_wait(blocks_client, "kit_upper", f"round {i}", timeout=10)
        assert artifact_texts(session) == [f"ROUND {i}"]
        agent.stop()
        agent.stop()  # twice is harmless


def test_a_card_is_published_and_decides_streaming(
    runner: AgentRunner, blocks_client: Any, blocks_network: BlocksTestNetwork
) -> None:
    def streams(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        ctx.create_stream(subscribe_grace_ms=0).write("live")
        return {"artifacts": [{"data": '{"done": true}', "mimeType": "application/json"}]}

    streaming = card("kit_streams", {"_default": {"direction": "outbound", "format": "bytes"}})
    agent = runner.start(streams, agent_name="kit_streams", card=streaming)
    assert agent.record is not None and agent.record["billingMode"] == "free"
    session = send_and_wait(blocks_client, "kit_streams", "go")  # no stream=True: the card says so
    assert artifact_json(session) == {"done": True}
    assert [ref.descriptor.format for ref in session.list_streams()] == ["bytes"]
    with pytest.raises(BackendError):  # the card's input is required
        blocks_client.send_message("kit_streams", [])


def test_publish_false_for_names_owned_by_another_organisation(
    runner: AgentRunner, blocks_client: Any
) -> None:
    with pytest.raises(BackendError, match="another organisation"):
        runner.start(upper, agent_name="echo", card=card("echo"))
    runner.start(upper, agent_name="echo", card=card("echo"), publish=False)
    assert artifact_texts(send_and_wait(blocks_client, "echo", "hi")) == ["HI"]


def test_agents_of_another_user(runner: AgentRunner, blocks_network: BlocksTestNetwork) -> None:
    _user, key = blocks_network.create_user("kit-other")
    runner.start(
        upper, agent_name="kit_private", card=card("kit_private"), api_key=key, listing="private"
    )
    own = blocks_network.client(api_key=key)
    assert artifact_texts(send_and_wait(own, "kit_private", "mine")) == ["MINE"]
    own.destroy()
    with blocks_network.client() as stranger, pytest.raises(BackendError):
        stranger.send_message("kit_private", [{"partId": "text", "text": "x"}])


def test_a_stopped_runner_refuses_new_agents(blocks_network: BlocksTestNetwork) -> None:
    agents = AgentRunner(blocks_network)
    agents.stop_all()
    with pytest.raises(ClosedError):
        agents.start(upper, agent_name="kit_late")


def test_environ_keeps_only_this_network(
    blocks_network: BlocksTestNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLOCKS_BACKEND_URL", "http://elsewhere.invalid")
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = blocks_network.environ()
    assert "BLOCKS_BACKEND_URL" not in env and env["SOMETHING_ELSE"] == "kept"
    assert {k: env[k] for k in blocks_network.env} == blocks_network.env


def test_close_destroys_clients_and_stops(tmp_path: Path) -> None:
    network = BlocksTestNetwork.start(tmp_path / "net")
    client = network.client()
    network.close()
    network.close()
    with pytest.raises(ClosedError):
        client.get_task("t_1")
    with pytest.raises(ClosedError):
        network.client()
