"""Cancel, terminate, pause/resume/retry over real HTTP (§3.4, §4.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.control import (
    CancelTask,
    PauseTask,
    ResumeTask,
    RetryTask,
    TerminateTask,
)
from blocks_network.protocol.errors import RPC_CONFLICT, RPC_NOT_FOUND
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent, wait_until


@pytest.fixture
def agent(net: LocalNetwork) -> Iterator[FakeAgent]:
    register_agent(net, "ctl")
    fake = FakeAgent(net, "ctl", concurrency=1, maxPendingBacklog=5)
    yield fake
    fake.stop()


def state_of(consumer: Consumer, task_id: str) -> str:
    return str(consumer.call("GetTask", {"taskId": task_id})["task"]["state"])


def test_cancel_publishes_cancel_requested_then_cancel_task(
    consumer: Consumer, agent: FakeAgent
) -> None:
    result = consumer.send("ctl")
    start = agent.next_start()
    agent.start(start)
    ack = consumer.call("CancelTask", {"taskId": result["taskId"], "reason": "user asked"})
    assert ack == {"taskId": result["taskId"], "state": "running"}
    message, meta = agent.next_control()
    assert isinstance(message, CancelTask)
    assert (message.task_id, message.reason, message.caller) == (
        result["taskId"],
        "user asked",
        consumer.user_id,
    )
    assert meta == {"instance": agent.instance_id}
    history = consumer.history(result)
    cancel_event = history[-1]
    assert cancel_event["type"] == "cancel_requested" and cancel_event["taskId"] == result["taskId"]
    assert isinstance(cancel_event["ts"], int) and cancel_event["protocolVersion"] == "2026-05-01"
    agent.finish(start, "canceled")
    assert wait_until(lambda: state_of(consumer, result["taskId"]) == "canceled")


def test_cancel_of_a_queued_task_ends_it_without_an_instance(
    consumer: Consumer, agent: FakeAgent
) -> None:
    running = consumer.send("ctl")
    start = agent.next_start()
    queued = consumer.send("ctl")
    assert queued["queued"]
    consumer.call("CancelTask", {"taskId": queued["taskId"]})
    assert state_of(consumer, queued["taskId"]) == "canceled"
    assert [m["type"] for m in consumer.history(queued)] == [
        "request",
        "cancel_requested",
        "terminal",
    ]
    agent.complete(start)
    assert wait_until(lambda: state_of(consumer, running["taskId"]) == "completed")
    agent.assert_no_control(timeout=0.5)


def test_cancel_of_a_finished_task_is_a_no_op(consumer: Consumer, agent: FakeAgent) -> None:
    result = consumer.send("ctl")
    agent.complete(agent.next_start())
    assert consumer.call("CancelTask", {"taskId": result["taskId"]})["state"] == "completed"
    agent.assert_no_control()
    assert [m["type"] for m in consumer.history(result)][-1] == "terminal"


def test_terminate_running_forwards_terminate_task(consumer: Consumer, agent: FakeAgent) -> None:
    result = consumer.send("ctl")
    start = agent.next_start()
    consumer.call("TerminateTask", {"taskId": result["taskId"]})
    message, _ = agent.next_control()
    assert isinstance(message, TerminateTask) and message.task_id == result["taskId"]
    agent.finish(start, "canceled", reason="terminated")
    task = wait_until(
        lambda: (
            (t := consumer.call("GetTask", {"taskId": result["taskId"]})["task"])["state"]
            == "canceled"
            and t
        )
    )
    assert task["reason"] == "terminated"


def test_terminate_of_a_queued_task_ends_it_canceled_terminated(
    consumer: Consumer, agent: FakeAgent
) -> None:
    consumer.send("ctl")
    agent.next_start()
    queued = consumer.send("ctl")
    consumer.call("TerminateTask", {"taskId": queued["taskId"]})
    terminal = consumer.history(queued)[-1]
    assert terminal["type"] == "terminal"
    assert (terminal["state"], terminal["reason"]) == ("canceled", "terminated")
    task = consumer.call("GetTask", {"taskId": queued["taskId"]})["task"]
    assert (task["state"], task["reason"]) == ("canceled", "terminated")


def test_pause_resume_retry_are_forwarded(consumer: Consumer, agent: FakeAgent) -> None:
    result = consumer.send("ctl")
    agent.start(agent.next_start())
    for method, kind in (
        ("PauseTask", PauseTask),
        ("ResumeTask", ResumeTask),
        ("RetryTask", RetryTask),
    ):
        consumer.call(method, {"taskId": result["taskId"]})
        message, meta = agent.next_control()
        assert isinstance(message, kind) and message.task_id == result["taskId"]
        assert message.caller == consumer.user_id and meta == {"instance": agent.instance_id}


def test_pause_of_queued_or_finished_tasks_is_a_conflict(
    consumer: Consumer, agent: FakeAgent
) -> None:
    first = consumer.send("ctl")
    start = agent.next_start()
    queued = consumer.send("ctl")
    error = consumer.error("PauseTask", {"taskId": queued["taskId"]})
    assert error["code"] == RPC_CONFLICT and "queued" in error["data"]["message"]
    agent.complete(start)
    wait_until(lambda: state_of(consumer, first["taskId"]) == "completed")
    error = consumer.error("ResumeTask", {"taskId": first["taskId"]})
    assert error["code"] == RPC_CONFLICT and "already ended" in error["data"]["message"]


def test_control_of_unknown_task_is_not_found(consumer: Consumer) -> None:
    for method in (
        "CancelTask",
        "TerminateTask",
        "PauseTask",
        "ResumeTask",
        "RetryTask",
        "GetTask",
    ):
        error = consumer.error(method, {"taskId": "t_missing"})
        assert error["code"] == RPC_NOT_FOUND and error["data"]["code"] == "TASK_NOT_FOUND", method
