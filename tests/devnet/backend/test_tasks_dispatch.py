"""Dispatch over real HTTP: least-loaded choice, backlog, capacity freed by terminals (§3, issue 3 §5)."""

from __future__ import annotations

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.constants import TASK_STATE_COMPLETED
from blocks_network.protocol.control import StartTask
from blocks_network.protocol.errors import RPC_AGENT_UNAVAILABLE
from blocks_network.protocol.events import TerminalEvent
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent, speed_up, task_record, wait_until


def received_by(agents: list[FakeAgent], count: int) -> dict[str, list[StartTask]]:
    """Collect ``count`` StartTasks across ``agents`` (each agent's own queue)."""
    got: dict[str, list[StartTask]] = {a.instance_id: [] for a in agents}
    total = 0
    while total < count:
        progressed = False
        for fake in agents:
            if not fake.control.empty():
                got[fake.instance_id].append(fake.next_start())
                total += 1
                progressed = True
        if not progressed:
            wait_until(lambda: any(not a.control.empty() for a in agents), what="a StartTask")
    return got


def test_three_instances_least_loaded_gets_the_task(net: LocalNetwork, consumer: Consumer) -> None:
    register_agent(net, "trio")
    agents = [FakeAgent(net, "trio", concurrency=3) for _ in range(3)]
    try:
        for _ in range(6):
            consumer.send("trio")
        got = received_by(agents, 6)
        assert sorted(len(tasks) for tasks in got.values()) == [2, 2, 2]
        for fake in agents:
            for task in got[fake.instance_id]:
                fake.start(task)
        # Instance 0 finishes both tasks, instance 1 one: loads are now 0, 1, 2.
        first, second, third = agents
        for task in got[first.instance_id]:
            first.finish(task)
        second.finish(got[second.instance_id][0])
        consumer.send("trio")
        assert first.next_start()
        consumer.send("trio")
        consumer.send("trio")
        # first (load 1) and second (load 1) take the next two; third (load 2) stays full-ish.
        later = received_by(agents, 2)
        assert len(later[third.instance_id]) == 0
        assert len(later[first.instance_id]) + len(later[second.instance_id]) == 2
    finally:
        for fake in agents:
            fake.stop()


def test_instance_at_capacity_gets_nothing_more(net: LocalNetwork, consumer: Consumer) -> None:
    register_agent(net, "solo")
    fake = FakeAgent(net, "solo", concurrency=1, maxPendingBacklog=5)
    try:
        consumer.send("solo")
        fake.start(fake.next_start())
        queued = consumer.send("solo")
        assert queued["queued"] is True and queued["state"] == "queued"
        fake.assert_no_control()
    finally:
        fake.stop()


def test_backlog_is_dispatched_when_a_terminal_frees_capacity(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "busy")
    fake = FakeAgent(net, "busy", concurrency=1, maxPendingBacklog=2)
    try:
        first = consumer.send("busy")
        running = fake.next_start()
        fake.start(running)
        second = consumer.send("busy")
        third = consumer.send("busy")
        assert second["queued"] and third["queued"]
        error = consumer.error(
            "SendMessage",
            {
                "agentName": "busy",
                "billingMode": "free",
                "requestParts": [{"partId": "text", "text": "x"}],
            },
        )
        assert error["code"] == RPC_AGENT_UNAVAILABLE
        assert error["data"]["code"] == "AGENT_BACKLOG_FULL"
        assert error["data"]["details"] == {"maxPendingBacklog": 2}
        assert "backlog of 2" in error["data"]["message"]

        fake.finish(running)
        assert fake.next_start().task_id == second["taskId"]
        record = task_record(net, second["taskId"])
        assert (
            record is not None
            and record.state == "submitted"
            and record.instance_id == fake.instance_id
        )
        assert consumer.call("GetTask", {"taskId": third["taskId"]})["task"]["state"] == "queued"
        assert task_record(net, first["taskId"]).state == "completed"  # type: ignore[union-attr]
    finally:
        fake.stop()


def test_a_task_waiting_only_for_a_freed_slots_confirmation_is_not_refused_as_busy(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "prompt")
    # The freed slot cools until the state confirms it, however slow this machine is.
    speed_up(net, release_grace_seconds=600.0)
    fake = FakeAgent(net, "prompt", concurrency=1, maxPendingBacklog=0)
    try:
        consumer.send("prompt")
        running = fake.next_start()
        fake.start(running)
        # The terminal, and its state not yet: the one slot is free but unconfirmed. A
        # consumer that waited for the terminal stays within capacity: it is not busy.
        fake.publish(running, TerminalEvent(running.task_id, TASK_STATE_COMPLETED).to_wire())
        wait_until(lambda: task_record(net, running.task_id).state == "completed")  # type: ignore[union-attr]
        second = consumer.send("prompt")
        assert second["queued"] is True
        fake.announce(0)  # the confirmation: the queued task is handed over
        assert fake.next_start().task_id == second["taskId"]
        # Held tasks fill it now: a zero backlog refuses the next one.
        error = consumer.error(
            "SendMessage",
            {
                "agentName": "prompt",
                "billingMode": "free",
                "requestParts": [{"partId": "text", "text": "x"}],
            },
        )
        assert error["data"]["code"] == "AGENT_BACKLOG_FULL"
    finally:
        fake.stop()


def test_zero_backlog_refuses_when_busy(net: LocalNetwork, consumer: Consumer) -> None:
    register_agent(net, "strict")
    fake = FakeAgent(net, "strict", concurrency=1, maxPendingBacklog=0)
    try:
        consumer.send("strict")
        error = consumer.error(
            "SendMessage",
            {
                "agentName": "strict",
                "billingMode": "free",
                "requestParts": [{"partId": "text", "text": "x"}],
            },
        )
        assert error["data"]["code"] == "AGENT_BACKLOG_FULL"
    finally:
        fake.stop()


def test_a_new_instance_takes_the_backlog(net: LocalNetwork, consumer: Consumer) -> None:
    register_agent(net, "grow")
    first = FakeAgent(net, "grow", concurrency=1, maxPendingBacklog=3)
    second: FakeAgent | None = None
    try:
        consumer.send("grow")
        first.next_start()
        queued = consumer.send("grow")
        assert queued["queued"]
        second = FakeAgent(net, "grow", concurrency=1)
        assert second.next_start().task_id == queued["taskId"]
    finally:
        first.stop()
        if second is not None:
            second.stop()
