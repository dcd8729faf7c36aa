"""GetTask/ListTasks, tenancy between organisations, read tokens and restarts (§4.1, §4.4, §5.4-5.5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pubnub.exceptions import PubNubException

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.constants import (
    API_PATH_ANON_TASK_READ_TOKEN,
    API_PATH_TASK_READ_TOKEN,
)
from blocks_network.protocol.errors import RPC_INVALID_PARAMS, RPC_NOT_FOUND
from tests.devnet.backend.conftest import NetworkFactory
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent, wait_until


@pytest.fixture
def alice(net: LocalNetwork) -> Iterator[Consumer]:
    client = Consumer(net)
    yield client
    client.close()


@pytest.fixture
def bob(net: LocalNetwork) -> Iterator[Consumer]:
    _user_id, api_key = net.create_user("bob")
    client = Consumer(net, api_key)
    yield client
    client.close()


@pytest.fixture
def agent(net: LocalNetwork) -> Iterator[FakeAgent]:
    register_agent(net, "shared", listing="public")
    fake = FakeAgent(net, "shared", concurrency=0)
    yield fake
    fake.stop()


def test_get_task_agrees_with_the_channel(alice: Consumer, agent: FakeAgent) -> None:
    result = alice.send("shared")
    task = alice.call("GetTask", {"taskId": result["taskId"]})["task"]
    assert task["state"] == "submitted" and task["queued"] is False
    start = agent.next_start()
    agent.start(start)
    assert wait_until(
        lambda: alice.call("GetTask", {"taskId": result["taskId"]})["task"]["state"] == "running"
    )
    agent.finish(start, "failed", error="boom")
    task = wait_until(
        lambda: (
            (t := alice.call("GetTask", {"taskId": result["taskId"]})["task"])["state"] == "failed"
            and t
        )
    )
    history_terminal = next(m for m in alice.history(result) if m["type"] == "terminal")
    assert (task["state"], task["error"]) == (history_terminal["state"], history_terminal["error"])
    assert task["agentName"] == "shared" and task["owner"] == alice.user_id
    assert task["createdTime"].endswith("Z") and "startedTime" in task and "endedTime" in task
    assert (
        task["streamChannels"]["status"]
        == result["extensions"]["blocks"]["streamChannels"]["status"]
    )


def test_list_tasks_pages_with_a_cursor(alice: Consumer, agent: FakeAgent) -> None:
    ids = [alice.send("shared", f"n{i}")["taskId"] for i in range(5)]
    page = alice.call("ListTasks", {"limit": 2})
    assert page["totalCount"] == 5 and len(page["tasks"]) == 2 and page["next"]
    seen = [t["taskId"] for t in page["tasks"]]
    while page["next"]:
        page = alice.call("ListTasks", {"limit": 2, "cursor": page["next"]})
        seen += [t["taskId"] for t in page["tasks"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert alice.call("ListTasks", {"state": "completed"})["totalCount"] == 0
    assert alice.call("ListTasks", {"agentName": "shared", "state": "submitted"})["totalCount"] == 5
    error = alice.error("ListTasks", {"cursor": "garbage"})
    assert error["code"] == RPC_INVALID_PARAMS
    assert alice.error("ListTasks", {"limit": 0})["code"] == RPC_INVALID_PARAMS


def test_two_organisations_cannot_see_each_others_tasks(
    net: LocalNetwork, alice: Consumer, bob: Consumer, agent: FakeAgent
) -> None:
    register_agent(net, "secret", listing="private")
    mine = alice.send("shared")
    agent.next_start()
    for method in ("GetTask", "CancelTask", "TerminateTask", "PauseTask"):
        error = bob.error(method, {"taskId": mine["taskId"]})
        assert error["code"] == RPC_NOT_FOUND and error["data"]["code"] == "TASK_NOT_FOUND", method
    assert bob.call("ListTasks")["totalCount"] == 0
    reply = bob.api.post(API_PATH_TASK_READ_TOKEN, {"taskId": mine["taskId"]}, token=bob.token)
    assert reply.status == 404
    # Bob cannot even learn that alice's private agent exists.
    error = bob.error(
        "SendMessage",
        {
            "agentName": "secret",
            "billingMode": "free",
            "requestParts": [{"partId": "text", "text": "x"}],
        },
    )
    assert error["data"]["code"] == "AGENT_NOT_FOUND"
    # Bob's read token for his own task does not open alice's channel.
    his = bob.send("shared")
    agent.next_start()
    client = bob.reader(his)
    try:
        with pytest.raises(PubNubException) as denied:
            client.fetch_messages().channels(
                [mine["extensions"]["blocks"]["streamChannels"]["status"]]
            ).sync()
        assert denied.value.get_status_code() == 403
    finally:
        client.stop()


def test_agent_organisation_sees_tasks_sent_to_its_agent(
    alice: Consumer, bob: Consumer, agent: FakeAgent
) -> None:
    his = bob.send("shared")
    agent.next_start()
    listed = alice.call("ListTasks", {"agentName": "shared"})
    assert [t["taskId"] for t in listed["tasks"]] == [his["taskId"]]
    assert alice.call("GetTask", {"taskId": his["taskId"]})["task"]["owner"] == bob.user_id
    token = alice.api.post(
        API_PATH_TASK_READ_TOKEN, {"taskId": his["taskId"], "role": "provider"}, token=alice.token
    )
    assert (
        token.status == 200
        and token.body["channel"] == his["extensions"]["blocks"]["streamChannels"]["status"]
    )


def test_task_read_token_reads_history(
    net: LocalNetwork, alice: Consumer, agent: FakeAgent
) -> None:
    result = alice.send("shared")
    agent.complete(agent.next_start())
    reply = alice.api.post(
        API_PATH_TASK_READ_TOKEN, {"taskId": result["taskId"]}, token=alice.token
    )
    assert reply.status == 200
    assert reply.body["channel"] == task_channel(net.dev_identity.org_id, result["taskId"])
    assert reply.body["ttlMinutes"] >= 1
    fresh = dict(result)
    fresh["extensions"] = {
        "blocks": {**result["extensions"]["blocks"], "readToken": reply.body["pamToken"]}
    }
    # Read tokens stay valid after the terminal: the consumer still reads the result.
    assert [m["type"] for m in alice.history(fresh)][-1] == "terminal"


def test_anonymous_read_token_needs_the_submitters_fingerprint(
    alice: Consumer, agent: FakeAgent
) -> None:
    result = alice.send("shared", fingerprint="fp-123")
    agent.next_start()
    ok = alice.api.post(
        API_PATH_ANON_TASK_READ_TOKEN, {"taskId": result["taskId"], "fingerprint": "fp-123"}
    )
    assert ok.status == 200 and ok.body["pamToken"]
    wrong = alice.api.post(
        API_PATH_ANON_TASK_READ_TOKEN, {"taskId": result["taskId"], "fingerprint": "fp-999"}
    )
    assert wrong.status == 403 and wrong.code == "ANON_TASK_ACCESS_DENIED"
    missing = alice.api.post(
        API_PATH_ANON_TASK_READ_TOKEN, {"taskId": "t_nope", "fingerprint": "fp-123"}
    )
    assert missing.status == 403


def test_tasks_survive_a_restart(network_factory: NetworkFactory) -> None:
    first = network_factory(scan_interval_seconds=0.05)
    register_agent(first, "durable")
    fake = FakeAgent(first, "durable")
    consumer = Consumer(first)
    try:
        done = consumer.send("durable", idempotencyKey="again")
        fake.complete(fake.next_start())
        wait_until(
            lambda: (
                consumer.call("GetTask", {"taskId": done["taskId"]})["task"]["state"] == "completed"
            )
        )
    finally:
        fake.stop()
        consumer.close()
    first.stop()
    second = network_factory(scan_interval_seconds=0.05)
    consumer = Consumer(second)
    try:
        assert consumer.call("GetTask", {"taskId": done["taskId"]})["task"]["state"] == "completed"
        replay = consumer.send("durable", idempotencyKey="again")
        assert replay["taskId"] == done["taskId"] and replay["idempotent"] is True
        assert next(m["type"] for m in consumer.history(replay)) == "request"
    finally:
        consumer.close()
