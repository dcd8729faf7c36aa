"""Task records, listing, the registry card, stream announcements and read-token renewal."""

from __future__ import annotations

import threading
from typing import Any

from blocks_devnet.network import LocalNetwork
from blocks_network import TaskClient, text_part
from tests.sdk.consumer.responder import Responder, silent

WAIT = 10.0


def test_get_task_and_list_tasks_with_paging(client: TaskClient, agent: Responder) -> None:
    ids = []
    for i in range(3):
        with client.send_message(agent_name="echo", request_parts=[text_part(str(i))]) as s:
            s.wait_for_terminal(timeout=WAIT)
            ids.append(s.task_id)
    info = client.get_task(ids[0])
    assert (info.task_id, info.state, info.agent_name) == (ids[0], "completed", "echo")
    assert info.owner == client.get_user_id()
    first = client.list_tasks(limit=2)
    assert len(first.tasks) == 2 and first.next is not None and first.total_count == 3
    second = client.list_tasks(limit=2, cursor=first.next)
    assert {t.task_id for t in first.tasks + second.tasks} == set(ids)
    assert client.list_tasks(agent_name="adder").tasks == []


def test_get_agent_card(client: TaskClient) -> None:
    card = client.get_agent_card("echo")
    assert card is not None and card["identity"]["agentName"] == "echo"
    assert client.get_agent_card("no_such_agent") is None


def test_owner_id_defaults_to_the_user_and_is_sent(client: TaskClient, agent: Responder) -> None:
    with client.send_message(agent_name="echo", request_parts=[text_part("o")]) as session:
        session.wait_for_terminal(timeout=WAIT)
    task = agent.tasks[session.task_id]
    assert task.owner_id == client.get_user_id()


def test_stream_announcements_reach_on_stream(
    client: TaskClient, agent: Responder, network: LocalNetwork
) -> None:
    agent.handler = silent
    session = client.send_message(agent_name="echo", request_parts=[text_part("s")])
    task = agent.started.get(timeout=WAIT)
    started = {
        "type": "progress",
        "taskId": task.task_id,
        "streamEvent": "stream_started",
        "streams": {
            f"{task.task_id}-1": {
                "channel": f"stream.echo.{task.task_id}-1",
                "token": "t",
                "direction": "outbound",
                "format": "events",
                "affinity": "dedicated",
            }
        },
    }
    # What the backend's stream-setup hook publishes after a handshake.
    environment = agent.agent.environment
    network.call(lambda: network.context.publish(environment, session.channel, started))
    seen: list[Any] = []
    got = threading.Event()
    session.on_stream(lambda ref: (seen.append(ref), got.set()))
    assert got.wait(WAIT)
    # on_stream gets a StreamRef per announced stream (the consumer's view: inbound).
    assert seen[0].stream_id == f"{task.task_id}-1"
    assert seen[0].descriptor.local_direction == "inbound"
    assert len(session._stream_announcements) == 1
    late: list[Any] = []
    session.on_stream(late.append)  # replayed to late registrants
    assert len(late) == 1
    session.close()


def test_a_refused_read_token_is_renewed_once(client: TaskClient, agent: Responder) -> None:
    agent.handler = silent
    original = client.send_message(agent_name="echo", request_parts=[text_part("r")])
    task = agent.started.get(timeout=WAIT)
    original.close()
    session = client._new_session(
        original.task_id,
        original.channel,
        "not-a-token",
        realtime=client._realtime,
        agent_name="echo",
        state="running",
        drain_window_s=1.0,
    )
    session._follow(client._realtime.cursor())  # refused → task-read-token → resubscribe
    agent.agent.complete(task, "renewed")
    assert session.wait_for_terminal(timeout=WAIT).state == "completed"
    assert session.download_artifact(session.list_artifacts()[0]).data == b"renewed"
    session.close()
