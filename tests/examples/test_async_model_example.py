"""The async-model-agent example against a local network and its simulated model API."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from blocks_network import TaskClient, text_part
from blocks_network.testing import AgentRunner

from .conftest import load, start_example

PROMPT = "to be or not to be"
ANSWER = "You said: to be or not to be"


@pytest.fixture
def model_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The example's simulated model on a free port, as ``MODEL_API_URL``."""
    server, url = load("async-model-agent", "model_server").start(0)
    monkeypatch.setenv("MODEL_API_URL", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_tokens_stream_through_the_stream_consumer(
    run_agent: AgentRunner, blocks_client: TaskClient, model_api: str
) -> None:
    start_example(run_agent, "async-model-agent")
    consumer = load("stream-consumer", "consumer")
    result = consumer.run(blocks_client, "async_model", PROMPT)
    assert result["state"] == "completed"
    tokens = result["streams"]["_default"]
    assert b"".join(tokens) == ANSWER.encode()
    assert result["artifacts"] == [ANSWER.encode()]
    assert result["errors"] == []


def test_many_waiting_tasks_share_one_loop_thread(
    run_agent: AgentRunner, blocks_client: TaskClient, model_api: str
) -> None:
    start_example(run_agent, "async-model-agent")
    sessions = [
        blocks_client.send_message("async_model", [text_part(f"{PROMPT} {i}")]) for i in range(12)
    ]
    try:
        states = [s.wait_for_terminal(timeout=30).state for s in sessions]
        answers = [s.download_artifact(s.list_artifacts()[0]).data for s in sessions]
    finally:
        for s in sessions:
            s.close()
    assert states == ["completed"] * 12
    assert answers == [f"{ANSWER} {i}".encode() for i in range(12)]
    # Twelve tasks waited on the model together without a worker thread each.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("blocks-task-")]
