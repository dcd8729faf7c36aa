"""examples/lifecycle: cancel, terminate, pause/resume over a control stream, retry as a
resubmission with a new idempotency key, and the same key returning the same task."""

from __future__ import annotations

from types import ModuleType

import pytest

from blocks_network import TaskClient
from blocks_network.testing import AgentRunner

from .conftest import load, start_example


@pytest.fixture
def lifecycle(run_agent: AgentRunner) -> ModuleType:
    start_example(run_agent, "lifecycle")
    return load("lifecycle", "consumer")


def test_cancel_stops_the_handler_early(lifecycle: ModuleType, blocks_client: TaskClient) -> None:
    result = lifecycle.stop_while_working(blocks_client, terminate=False, step_s=0.05)
    assert (result["state"], result["reason"]) == ("canceled", None)
    assert result["result"]["canceled"] is True and result["result"]["terminated"] is False
    assert 1 <= result["result"]["done"] < result["result"]["of"]


def test_terminate_ends_canceled_with_reason_terminated(
    lifecycle: ModuleType, blocks_client: TaskClient
) -> None:
    result = lifecycle.stop_while_working(blocks_client, terminate=True, step_s=0.05)
    assert (result["state"], result["reason"]) == ("canceled", "terminated")
    assert result["result"]["terminated"] is True


def test_pause_and_resume_over_the_control_stream(
    lifecycle: ModuleType, blocks_client: TaskClient
) -> None:
    result = lifecycle.pause_and_resume(blocks_client, step_s=0.02)
    states = [ack["state"] for ack in result["acks"]]
    assert states == ["paused", "running", "stopped"]
    assert result["state"] == "canceled"
    assert result["result"]["pauses"] == 1
    assert result["result"]["steps"] >= result["acks"][0]["step"]


def test_retry_is_a_new_task_with_a_new_key(
    lifecycle: ModuleType, blocks_client: TaskClient
) -> None:
    attempts = lifecycle.retry(blocks_client)["attempts"]
    assert [a["state"] for a in attempts] == ["failed", "completed"]
    assert "transient failure" in attempts[0]["error"]
    assert attempts[0]["taskId"] != attempts[1]["taskId"]


def test_the_same_key_returns_the_same_finished_task(
    lifecycle: ModuleType, blocks_client: TaskClient
) -> None:
    result = lifecycle.same_key(blocks_client)
    assert result["idempotent"] is True
    assert result["alreadyOver"] is True
    assert result["state"] == "completed"
