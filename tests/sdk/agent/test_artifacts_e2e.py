"""Large artifacts go through the presigned upload and arrive byte for byte (protocol §5.6, §7)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from blocks_network.consumer import TaskClient, text_part
from blocks_network.protocol.artifacts import FileArtifactRef, InlineArtifactRef
from blocks_network.protocol.constants import MAX_UPLOAD_BYTES
from blocks_network.types import StartTaskMessage, TaskContext
from tests.sdk.agent.conftest import AgentFactory

WAIT_S = 30.0


def _artifacts(consumer: TaskClient, agent: str) -> tuple[Any, list[Any], list[Any]]:
    with consumer.send_message(agent, [text_part("go")]) as session:
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        refs = session.list_artifacts()
        return terminal, refs, [session.download_artifact(ref) for ref in refs]


def test_returned_large_artifact_is_uploaded(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    payload = os.urandom(1_500_000)

    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        return {
            "artifacts": [
                {"data": payload, "mimeType": "application/x-test", "fileName": "big.bin"}
            ]
        }

    start_agent(agent_name="bigger", handler=handler)
    terminal, refs, downloads = _artifacts(consumer, "bigger")
    assert terminal.state == "completed", terminal.data
    assert isinstance(refs[0], FileArtifactRef) and refs[0].size == len(payload)
    assert downloads[0].data == payload
    assert (downloads[0].mime_type, downloads[0].file_name) == ("application/x-test", "big.bin")


def test_publish_artifact_uploads_and_names_by_default(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    payload = os.urandom(40_000)
    refs: list[Any] = []

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        refs.append(ctx.publish_artifact(payload))

    start_agent(agent_name="bigger", handler=handler)
    terminal, _seen, downloads = _artifacts(consumer, "bigger")
    assert terminal.state == "completed", terminal.data
    assert isinstance(refs[0], FileArtifactRef)
    assert downloads[0].data == payload
    assert downloads[0].file_name == f"{terminal.task_id}-artifact"


def test_inline_limit_is_read_from_the_environment(
    start_agent: AgentFactory, consumer: TaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACT_INLINE_LIMIT_BYTES", "10")
    start_agent(
        agent_name="small", handler=lambda task, ctx: {"artifacts": [{"data": "eleven char"}]}
    )
    terminal, refs, downloads = _artifacts(consumer, "small")
    assert terminal.state == "completed"
    assert isinstance(refs[0], FileArtifactRef)
    assert downloads[0].data == b"eleven char"


def test_exactly_the_limit_stays_inline(start_agent: AgentFactory, consumer: TaskClient) -> None:
    start_agent(
        agent_name="small", handler=lambda task, ctx: {"artifacts": [{"data": b"x" * 16384}]}
    )
    _, refs, downloads = _artifacts(consumer, "small")
    assert isinstance(refs[0], InlineArtifactRef)
    assert downloads[0].data == b"x" * 16384


def test_over_25_mib_fails_the_task_with_a_reason(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    start_agent(
        agent_name="huge",
        handler=lambda task, ctx: {"artifacts": [{"data": b"\0" * (MAX_UPLOAD_BYTES + 1)}]},
    )
    terminal, refs, _ = _artifacts(consumer, "huge")
    assert terminal.state == "failed"
    assert "25 MiB" in terminal.data["error"]
    assert refs == []


def test_events_land_in_the_order_the_handler_made_them(
    start_agent: AgentFactory, consumer: TaskClient
) -> None:
    # Inline artifacts are sent without waiting for the answer; an upload's event comes from
    # the backend. Whatever the mix, the channel shows them in the handler's order.
    big = os.urandom(40_000)

    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        ctx.publish_artifact(b"first", mime_type="text/plain")
        ctx.publish_artifact(big, mime_type="application/octet-stream", file_name="big.bin")
        ctx.publish_artifact(b"third", mime_type="text/plain")
        return {"artifacts": [{"data": "last", "mimeType": "text/plain"}]}

    start_agent(agent_name="ordered", handler=handler)
    for _ in range(3):
        with consumer.send_message("ordered", [text_part("go")]) as session:
            assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
            types = [e.type for e in session.events]
            downloads = [session.download_artifact(ref).data for ref in session.list_artifacts()]
        assert types.index("progress") < types.index("artifact")
        assert types[-1] == "terminal"
        assert downloads == [b"first", big, b"third", b"last"]
