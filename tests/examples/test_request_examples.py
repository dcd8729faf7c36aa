"""Request/response examples against a local network: echo, adder, orchestrator, chat-agent,
request-consumer."""

from __future__ import annotations

import json
import re

import pytest

from blocks_network import TaskClient
from blocks_network.consumer import TaskSession
from blocks_network.testing import (
    AgentRunner,
    BlocksTestNetwork,
    artifact_json,
    artifact_texts,
    send_and_wait,
)

from .conftest import EXAMPLES, card_of, load, start_builtin, start_example


def test_echo_answers_with_its_prefix(run_agent: AgentRunner, blocks_client: TaskClient) -> None:
    start_example(run_agent, "echo")
    session = send_and_wait(blocks_client, "echo", "hello")
    assert session.state == "completed"
    assert artifact_texts(session) == ["Echoed request: hello"]


#: ``blocks send AGENT 'INPUT'   # PROMISE`` in an example's README.
SEND_LINE = re.compile(r"^blocks send (\w+) ('[^']*'|\"[^\"]*\")\s+# (.+)$", re.MULTILINE)


def _readme_sends(folder: str) -> list[tuple[str, str, str]]:
    text = (EXAMPLES / folder / "README.md").read_text()
    return [(agent, text_[1:-1], promise) for agent, text_, promise in SEND_LINE.findall(text)]


def _check_promise(session: TaskSession, promise: str) -> None:
    """What ``blocks send`` shows for ``session``, as the README's comment promises it: an
    artifact (JSON compared as values), or ``[task] failed: ERROR-PREFIX ...``."""
    promise = re.sub(r"^terminal \d+: ", "", promise)
    if promise.startswith("[task] failed: "):
        assert session.state == "failed" and session.terminal_event is not None
        shown = f"[task] failed: {session.terminal_event.error}"
        assert shown.startswith(promise.split(" ...")[0]), (shown, promise)
        return
    assert session.state == "completed"
    if promise.startswith("{"):
        assert artifact_json(session) == json.loads(promise)
    else:
        assert artifact_texts(session) == [promise]


@pytest.mark.parametrize(("folder", "agent_count"), [("echo", 1), ("adder-card", 2)])
def test_the_readme_s_blocks_send_lines_show_what_the_agent_answers(
    run_agent: AgentRunner, blocks_client: TaskClient, folder: str, agent_count: int
) -> None:
    sends = _readme_sends(folder)
    assert len(sends) == agent_count
    start_example(run_agent, folder)
    for agent, text, promise in sends:
        assert agent == card_of(folder)["identity"]["agentName"]
        _check_promise(send_and_wait(blocks_client, agent, text), promise)


def test_adder_card_fails_bad_input_with_the_exception_type(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_example(run_agent, "adder-card")
    bad = send_and_wait(blocks_client, "adder_card", '{"a": 1}')
    assert bad.state == "failed" and bad.terminal_event is not None
    usage = load("adder-card").USAGE
    assert bad.terminal_event.error == f"ValueError: missing numbers a and b; {usage}"


def test_the_built_in_adder_answers_ok_false_where_adder_card_fails(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    # Two agents, two names: the README of adder-card states this difference.
    start_builtin(run_agent, "adder")
    answer = send_and_wait(blocks_client, "adder", "two and two")
    assert answer.state == "completed"
    assert artifact_json(answer) == {
        "ok": False,
        "error": "Missing math_add request with numeric a and b",
        "input": "two and two",
    }
    assert (
        '{"ok": false, "error": "Missing math_add request with numeric a and b"'
        in (EXAMPLES / "adder-card" / "README.md").read_text()
    )


def test_orchestrator_fans_out_and_summarises(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_builtin(run_agent, "echo")
    start_builtin(run_agent, "adder")
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
    start_builtin(run_agent, "echo")
    start_builtin(run_agent, "adder")
    start_example(run_agent, "orchestrator")
    session = send_and_wait(blocks_client, "orchestrator", json.dumps({"a": "x", "b": 1}))
    assert session.state == "failed"
    assert session.terminal_event is not None
    error = session.terminal_event.error or ""
    assert error.startswith("RuntimeError: adder task ")
    assert error.endswith(" answered: Missing math_add request with numeric a and b")


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
    start_builtin(run_agent, "echo")  # as its README runs them
    start_builtin(run_agent, "adder")
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
