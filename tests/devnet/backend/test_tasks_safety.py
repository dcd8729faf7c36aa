"""The safety net end to end: stuck, expired and orphaned tasks reach a terminal (issue 3 §10)."""

from __future__ import annotations

import pytest
from pubnub.exceptions import PubNubException

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.control import ExpireTask
from blocks_network.protocol.events import ProgressState
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent, speed_up, wait_until


def task_of(consumer: Consumer, task_id: str) -> dict[str, object]:
    return dict(consumer.call("GetTask", {"taskId": task_id})["task"])


def terminal_of(consumer: Consumer, result: dict[str, object]) -> dict[str, object]:
    def find() -> dict[str, object] | None:
        terminals = [m for m in consumer.history(result) if m.get("type") == "terminal"]
        return terminals[0] if terminals else None

    return wait_until(find, what="a terminal in history")


def test_request_past_max_running_time_fails_and_write_token_is_revoked(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "slow", runtime={"handler": "./h.py", "maxRunningTimeSec": 1})
    fake = FakeAgent(net, "slow")
    try:
        result = consumer.send("slow")
        start = fake.next_start()
        fake.start(start)
        terminal = terminal_of(consumer, result)
        assert terminal["state"] == "failed"
        assert "maxRunningTimeSec (1 s)" in str(terminal["error"])
        task = task_of(consumer, str(result["taskId"]))
        assert task["state"] == "failed" and task["error"] == terminal["error"]
        # The instance's write token died with the task: a late event is refused.
        with pytest.raises(PubNubException) as denied:
            fake.publish(start, ProgressState(start.task_id).to_wire())
        assert denied.value.get_status_code() == 403
    finally:
        fake.stop()


def test_first_terminal_wins_over_a_late_agent_terminal(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "late", runtime={"handler": "./h.py", "maxRunningTimeSec": 1})
    fake = FakeAgent(net, "late")
    try:
        result = consumer.send("late")
        fake.next_start()
        terminal_of(consumer, result)
        assert task_of(consumer, str(result["taskId"]))["state"] == "failed"
        # The backend itself publishing a second terminal changes nothing either.
        net.call(
            lambda: net.context.tasks.publish_terminal(
                net.context.tasks.store.get(str(result["taskId"])),  # type: ignore[arg-type]
                "completed",
            )
        )
        assert task_of(consumer, str(result["taskId"]))["state"] == "failed"
    finally:
        fake.stop()


def test_instance_that_leaves_fails_its_tasks(net: LocalNetwork, consumer: Consumer) -> None:
    register_agent(net, "flaky")
    fake = FakeAgent(net, "flaky")
    try:
        result = consumer.send("flaky")
        fake.start(fake.next_start())
        fake.leave()
        terminal = terminal_of(consumer, result)
        assert terminal["state"] == "failed"
        assert terminal["error"] == f"agent instance {fake.instance_id} went offline"
    finally:
        fake.stop()


def test_task_never_started_by_a_vanished_instance_runs_on_another_exactly_once(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "mover")
    first = FakeAgent(net, "mover")
    second = None
    try:
        result = consumer.send("mover")
        start = first.next_start()
        second = FakeAgent(net, "mover")
        first.leave()
        # Taken back (never started) and handed to the other instance, not failed.
        again = second.next_start()
        assert again.task_id == start.task_id and again.write_token != start.write_token
        record = net.call(lambda: net.context.tasks.store.get(start.task_id))
        assert record is not None and record.instance_id == second.instance_id
        # The first instance's token died with the take-back: it cannot start it late.
        with pytest.raises(PubNubException) as denied:
            first.publish(start, ProgressState(start.task_id).to_wire())
        assert denied.value.get_status_code() == 403
        second.complete(again)
        terminal = terminal_of(consumer, result)
        assert terminal["state"] == "completed"
        assert [m["type"] for m in consumer.history(result)].count("terminal") == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_queued_tasks_of_a_vanished_agent_fail_after_the_grace(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "gone")
    fake = FakeAgent(net, "gone", concurrency=1, maxPendingBacklog=3)
    try:
        consumer.send("gone")
        fake.next_start()
        queued = consumer.send("gone")
        assert queued["queued"]
        fake.leave()
        terminal = terminal_of(consumer, queued)
        assert terminal["state"] == "failed" and "no instance of agent 'gone'" in str(
            terminal["error"]
        )
    finally:
        fake.stop()


def test_pipe_past_its_deadline_gets_expire_task_then_a_completed_terminal(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "piper", capabilities={"taskKinds": ["request", "pipe"]})
    fake = FakeAgent(net, "piper")
    try:
        result = consumer.send("piper", extensions={"blocks": {"taskKind": "pipe", "duration": 1}})
        start = fake.next_start()
        fake.start(start)
        task_id = str(result["taskId"])
        # Let the minute pass at once: move the stored deadline into the past.
        net.call(
            lambda: net.context.db.execute(
                "UPDATE tasks SET duration_expires_at_ms=1 WHERE task_id=?", (task_id,)
            )
        )
        message, meta = fake.next_control()
        assert isinstance(message, ExpireTask) and message.task_id == task_id
        assert meta == {"instance": fake.instance_id}
        terminal = terminal_of(consumer, result)
        assert (terminal["state"], terminal["completionReason"]) == (
            "completed",
            "duration_expired",
        )
    finally:
        fake.stop()


def test_pipe_ended_by_its_instance_after_expire_keeps_the_instance_terminal(
    net: LocalNetwork, consumer: Consumer
) -> None:
    speed_up(net, expire_grace_seconds=30)
    register_agent(net, "polite", capabilities={"taskKinds": ["request", "pipe"]})
    fake = FakeAgent(net, "polite")
    try:
        result = consumer.send("polite", extensions={"blocks": {"taskKind": "pipe", "duration": 1}})
        start = fake.next_start()
        task_id = str(result["taskId"])
        net.call(
            lambda: net.context.db.execute(
                "UPDATE tasks SET duration_expires_at_ms=1 WHERE task_id=?", (task_id,)
            )
        )
        assert isinstance(fake.next_control()[0], ExpireTask)
        fake.finish(start, "completed", completion_reason="duration_expired")
        terminals = [m for m in consumer.history(result) if m.get("type") == "terminal"]
        assert len(terminals) == 1
        assert task_of(consumer, task_id)["completionReason"] == "duration_expired"
    finally:
        fake.stop()
