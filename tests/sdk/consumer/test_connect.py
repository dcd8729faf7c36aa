"""connect(task_id): finished tasks from history, active tasks live, paging past 100 events."""

from __future__ import annotations

import threading

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import RpcError, TaskClient, TaskEvent, text_part
from blocks_network.protocol.control import StartTask
from tests.sdk.consumer.responder import Responder, echo_text, silent

WAIT = 10.0
MANY = 150


def many_then_hold(responder: Responder, task: StartTask) -> None:
    responder.agent.start(task)
    for i in range(MANY):
        responder.progress(task, f"step {i}")


def test_connect_to_a_finished_task(client: TaskClient, agent: Responder) -> None:
    session = client.send_message(agent_name="echo", request_parts=[text_part("done")])
    session.wait_for_terminal(timeout=WAIT)
    session.close()
    with client.connect(session.task_id) as again:
        assert again.is_terminal and again.state == "completed"
        assert again.wait_for_terminal(timeout=0).state == "completed"  # immediate
        [ref] = again.list_artifacts()
        assert again.download_artifact(ref).data == b"Echoed request: done"
        assert [e.type for e in again.events] == ["request", "progress", "artifact", "terminal"]
        assert not again._subscribed


def test_connect_to_an_active_task_with_long_history(client: TaskClient, agent: Responder) -> None:
    agent.handler = many_then_hold
    first = client.send_message(agent_name="echo", request_parts=[text_part("long")])
    task = agent.started.get(timeout=WAIT)
    first.close()

    live: list[TaskEvent] = []
    got_terminal = threading.Event()
    with client.connect(first.task_id) as session:
        assert not session.is_terminal and session.state == "running"
        messages = [e.message for e in session.events if e.message]
        assert messages == [f"step {i}" for i in range(MANY)]  # two history pages
        session.on_terminal(lambda e: got_terminal.set())
        session.on_artifact(live.append)
        agent.agent.complete(task, echo_text(task))
        assert got_terminal.wait(WAIT)
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        assert len(live) == 1
        assert (
            len(session.events) == 1 + 1 + MANY + 1 + 1 + 1
        )  # request, running, …, artifact, terminal


def test_connect_to_a_finished_task_with_long_history(client: TaskClient, agent: Responder) -> None:
    def many_then_finish(responder: Responder, task: StartTask) -> None:
        many_then_hold(responder, task)
        responder.agent.complete(task, "fin")

    agent.handler = many_then_finish
    session = client.send_message(agent_name="echo", request_parts=[text_part("x")])
    session.wait_for_terminal(timeout=WAIT)
    session.close()
    with client.connect(session.task_id) as again:
        assert again.is_terminal
        assert sum(1 for e in again.events if e.message) == MANY
        assert again.download_artifact(again.list_artifacts()[0]).data == b"fin"


def test_connect_to_an_unknown_task(client: TaskClient) -> None:
    with pytest.raises(RpcError) as info:
        client.connect("t_does_not_exist")
    assert info.value.code == "TASK_NOT_FOUND"
    assert "not found" in str(info.value)


def test_two_users_cannot_see_each_others_tasks(
    client: TaskClient, agent: Responder, network: LocalNetwork, make_client: object
) -> None:
    agent.handler = silent
    mine = client.send_message(agent_name="echo", request_parts=[text_part("private")])
    _user_id, other_key = network.create_user("mallory")
    other = TaskClient.create("free", api_key=other_key)
    try:
        with pytest.raises(RpcError) as info:
            other.connect(mine.task_id)
        assert info.value.code == "TASK_NOT_FOUND"
        with pytest.raises(RpcError):
            other.get_task(mine.task_id)
        assert mine.task_id not in {t.task_id for t in other.list_tasks().tasks}
        assert mine.task_id in {t.task_id for t in client.list_tasks().tasks}
        with pytest.raises(RpcError):
            other.cancel_task(mine.task_id)
    finally:
        other.destroy()
        mine.close()
