"""Request/response examples against a local network: echo, adder, orchestrator, chat-agent,
request-consumer."""

from __future__ import annotations

import json

from blocks_network import TaskClient
from blocks_network.testing import (
    AgentRunner,
    BlocksTestNetwork,
    artifact_json,
    artifact_texts,
    send_and_wait,
)

from .conftest import load, start_example


def test_echo_answers_with_its_prefix(run_agent: AgentRunner, blocks_client: TaskClient) -> None:
    start_example(run_agent, "echo")
    session = send_and_wait(blocks_client, "echo", "hello")
    assert session.state == "completed"
    assert artifact_texts(session) == ["Echoed request: hello"]


def test_adder_adds_and_fails_bad_input(run_agent: AgentRunner, blocks_client: TaskClient) -> None:
    start_example(run_agent, "adder")
    ok = send_and_wait(blocks_client, "adder", '{"a": 2, "b": 40}')
    assert artifact_json(ok) == {"ok": True, "a": 2, "b": 40, "sum": 42}
    bad = send_and_wait(blocks_client, "adder", "two and two")
    assert bad.state == "failed"
    assert bad.terminal_event is not None
    assert "not JSON" in (bad.terminal_event.error or "")


def test_orchestrator_fans_out_and_summarises(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_example(run_agent, "echo")
    start_example(run_agent, "adder")
    start_example(run_agent, "orchestrator")
    session = send_and_wait(
        blocks_client, "orchestrator", json.dumps({"text": "hi", "a": 2, "b": 40})
    )
    assert session.state == "completed"
    summary = artifact_json(session)
    assert summary["echo"] == "Echoed request: hi"
    assert summary["sum"] == 42
    assert set(summary["subtasks"]) == {"echo", "adder"}
    statuses = [e.message for e in session.events if e.type == "progress" and e.message]
    assert statuses == ["asking echo and adder"]


def test_orchestrator_fails_when_a_subtask_fails(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_example(run_agent, "echo")
    start_example(run_agent, "adder")
    start_example(run_agent, "orchestrator")
    session = send_and_wait(blocks_client, "orchestrator", json.dumps({"a": "x", "b": 1}))
    assert session.state == "failed"
    assert session.terminal_event is not None
    assert "adder task" in (session.terminal_event.error or "")


def test_chat_agent_remembers_through_the_history_artifact(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_example(run_agent, "chat-agent")
    consumer = load("chat-agent", "consumer")
    transcript = consumer.run(blocks_client, ["my name is Ada", "how are you?", "what is my name?"])
    assert transcript[0] == ("my name is Ada", "Nice to meet you, Ada!")
    assert "message 2" in transcript[1][1]
    assert transcript[2] == ("what is my name?", "Your name is Ada.")


def test_request_consumer(run_agent: AgentRunner, blocks_client: TaskClient) -> None:
    start_example(run_agent, "echo")
    start_example(run_agent, "adder")
    consumer = load("request-consumer", "consumer")
    results = consumer.run(blocks_client, "hello", 2, 40)
    assert results["echo"]["state"] == "completed"
    assert results["echo"]["artifacts"] == [("text/plain", "Echoed request: hello")]
    assert results["echo"]["progress"] == ["running"]
    assert json.loads(results["adder"]["artifacts"][0][1])["sum"] == 42
    assert results["unknown agent"] == "AGENT_NOT_FOUND"


def test_request_consumer_billing_mismatch(blocks_network: BlocksTestNetwork) -> None:
    consumer = load("request-consumer", "consumer")
    with TaskClient.create(
        "paid", api_key=blocks_network.api_key, environ=blocks_network.env
    ) as paid:
        assert consumer.billing_mismatch(paid) == "free"
