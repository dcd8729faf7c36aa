"""echo and adder through the real local network (protocol §9.7), exact outputs."""

from __future__ import annotations

import json

from blocks_network.consumer import TaskClient, text_part
from blocks_network.handlers.adder import adder_handler
from blocks_network.handlers.echo import echo_handler
from tests.sdk.agent.conftest import AgentFactory


def _run(
    consumer: TaskClient, agent: str, parts: list[object]
) -> tuple[str | None, list[tuple[bytes, str]], list[str]]:
    session = consumer.send_message(agent, parts)
    with session:
        terminal = session.wait_for_terminal(timeout=15)
        artifacts = [session.download_artifact(ref) for ref in session.list_artifacts()]
        types = [e.type for e in session.events]
    return terminal.state, [(a.data, a.mime_type) for a in artifacts], types


def test_echo_answers_with_the_exact_text(start_agent: AgentFactory, consumer: TaskClient) -> None:
    start_agent(agent_name="echo", handler=echo_handler)
    state, artifacts, types = _run(consumer, "echo", [text_part("hi")])
    assert state == "completed"
    assert artifacts == [(b"Echoed request: hi", "text/plain")]
    # progress running precedes the artifact, which precedes the terminal (§10.1).
    assert types.index("progress") < types.index("artifact") < types.index("terminal")


def test_echo_without_text_dumps_the_parts(start_agent: AgentFactory, consumer: TaskClient) -> None:
    start_agent(agent_name="echo", handler=echo_handler)
    parts = [{"partId": "text", "a": 1}]
    _, artifacts, _ = _run(consumer, "echo", parts)
    [(data, mime_type)] = artifacts
    prefix = b"Echoed request: "
    assert mime_type == "text/plain" and data.startswith(prefix)
    assert json.loads(data[len(prefix) :]) == parts


def test_adder_sums_a_and_b(start_agent: AgentFactory, consumer: TaskClient) -> None:
    start_agent(agent_name="adder", handler=adder_handler)
    state, artifacts, _ = _run(consumer, "adder", [text_part('{"a": 2, "b": 3.5}')])
    assert state == "completed"
    assert artifacts == [
        (b'{\n  "ok": true,\n  "a": 2,\n  "b": 3.5,\n  "sum": 5.5\n}', "application/json")
    ]


def test_adder_without_numbers_still_completes(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    start_agent(agent_name="adder", handler=adder_handler)
    state, artifacts, _ = _run(consumer, "adder", [text_part("two plus three")])
    assert state == "completed"
    expected = {
        "ok": False,
        "error": "Missing math_add request with numeric a and b",
        "input": "two plus three",
    }
    assert artifacts == [(json.dumps(expected, indent=2).encode(), "application/json")]
