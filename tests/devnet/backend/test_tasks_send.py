"""SendMessage over real HTTP: validation, the result shape, StartTask, idempotency (§4.1, §3.1)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_devnet.realtime.access_tokens import TokenGrant, verify_token
from blocks_network.protocol.channels import setup_channel, task_channel
from blocks_network.protocol.constants import PROTOCOL_VERSION, WRITE_AFFINITY_HEADER
from blocks_network.protocol.errors import (
    RPC_AGENT_UNAVAILABLE,
    RPC_BILLING_MODE_MISMATCH,
    RPC_FORBIDDEN,
    RPC_INVALID_PARAMS,
    RPC_NOT_FOUND,
)
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent


def grant_of(net: LocalNetwork, token: str | None, environment: str = "playground") -> TokenGrant:
    assert token is not None
    return verify_token(token, net.keysets[environment].secret_key, time.time())


@pytest.fixture
def agent(net: LocalNetwork) -> Iterator[FakeAgent]:
    register_agent(net, "worker")
    fake = FakeAgent(net, "worker")
    yield fake
    fake.stop()


def test_send_message_result_and_start_task_fields(
    net: LocalNetwork, consumer: Consumer, agent: FakeAgent
) -> None:
    reply = consumer.rpc(
        "SendMessage",
        {
            "agentName": "worker",
            "billingMode": "free",
            "requestParts": [{"partId": "text", "text": "hi", "extra": 1}],
            "ownerId": "",
        },
    )
    assert reply.status == 200, reply.body
    assert WRITE_AFFINITY_HEADER in reply.headers
    result = reply.body["result"]
    org_id = net.dev_identity.org_id
    task_id = result["taskId"]
    blocks = result["extensions"]["blocks"]
    assert (
        result["state"] == "submitted"
        and result["idempotent"] is False
        and result["queued"] is False
    )
    assert blocks["streamChannels"] == {"status": task_channel(org_id, task_id)}
    keyset = net.keysets["playground"]
    assert (blocks["subscribeKey"], blocks["publishKey"]) == (
        keyset.subscribe_key,
        keyset.publish_key,
    )
    read_grant = grant_of(net, blocks["readToken"])
    assert read_grant.channels == {task_channel(org_id, task_id): 1}

    start = agent.next_start()
    assert start.task_id == task_id
    assert start.protocol_version == PROTOCOL_VERSION
    assert start.agent_name == "worker"
    assert start.owner_id == consumer.user_id
    assert start.org_id == org_id
    assert [p.to_wire() for p in start.request_parts] == [
        {"partId": "text", "text": "hi", "extra": 1}
    ]
    assert start.caller_claims is not None and start.caller_claims["sub"] == consumer.user_id
    assert start.request_summary == {"partCount": 1, "partIds": ["text"]}
    assert start.task_kind == "request" and start.has_stream is False
    assert start.duration is None and start.duration_expires_at_ms is None
    write_grant = grant_of(net, start.write_token)
    assert write_grant.authorized_uuid == agent.instance_id
    assert set(write_grant.channels) == {
        task_channel(org_id, task_id),
        setup_channel(org_id, task_id),
    }
    control_grant = grant_of(net, start.control_token)
    assert control_grant.authorized_uuid == agent.instance_id
    assert set(control_grant.channels) == {agent.control_channel}


def test_request_event_is_the_first_stored_event(consumer: Consumer, agent: FakeAgent) -> None:
    result = consumer.send("worker", "first")
    agent.complete(agent.next_start(), "out")
    history = consumer.history(result)
    assert [m["type"] for m in history] == ["request", "progress", "artifact", "terminal"]
    assert history[0] == {
        "type": "request",
        "taskId": result["taskId"],
        "requestParts": [{"partId": "text", "text": "first"}],
        "protocolVersion": PROTOCOL_VERSION,
    }


def test_billing_mode_mismatch_names_expected_and_got(consumer: Consumer, agent: FakeAgent) -> None:
    error = consumer.error(
        "SendMessage",
        {
            "agentName": "worker",
            "billingMode": "paid",
            "requestParts": [{"partId": "text", "text": "x"}],
        },
    )
    assert error["code"] == RPC_BILLING_MODE_MISMATCH
    assert error["data"]["code"] == "BillingModeMismatch"
    assert error["data"]["details"] == {"expected": "free", "got": "paid"}
    agent.assert_no_control()


def test_owner_id_must_be_the_caller(consumer: Consumer, agent: FakeAgent) -> None:
    error = consumer.error(
        "SendMessage",
        {
            "agentName": "worker",
            "billingMode": "free",
            "requestParts": [{"partId": "text", "text": "x"}],
            "ownerId": "someone_else",
        },
    )
    assert error["code"] == RPC_FORBIDDEN
    assert "ownerId" in error["data"]["message"]
    result = consumer.send("worker", ownerId=consumer.user_id)
    assert (
        agent.next_start().owner_id
        == consumer.user_id
        == consumer.call("GetTask", {"taskId": result["taskId"]})["task"]["owner"]
    )


def test_idempotency_key_returns_the_existing_task(consumer: Consumer, agent: FakeAgent) -> None:
    first = consumer.send("worker", idempotencyKey="k-1")
    again = consumer.send("worker", "different text", idempotencyKey="k-1")
    assert again["taskId"] == first["taskId"]
    assert again["idempotent"] is True and first["idempotent"] is False
    agent.next_start()
    agent.assert_no_control()
    assert consumer.send("worker", idempotencyKey="k-2")["taskId"] != first["taskId"]


def test_idempotent_replay_of_a_finished_task_reports_its_terminal(
    consumer: Consumer, agent: FakeAgent
) -> None:
    consumer.send("worker", idempotencyKey="done")
    agent.complete(agent.next_start())
    again = consumer.send("worker", idempotencyKey="done")
    assert again["idempotent"] is True and again["state"] == "completed"


def test_unknown_agent_is_not_found(consumer: Consumer) -> None:
    error = consumer.error(
        "SendMessage", {"agentName": "nobody", "billingMode": "free", "requestParts": []}
    )
    assert error["code"] == RPC_NOT_FOUND and error["data"]["code"] == "AGENT_NOT_FOUND"


def test_agent_with_no_instance_is_unavailable_and_nothing_is_stored(
    net: LocalNetwork, consumer: Consumer
) -> None:
    register_agent(net, "lonely")
    error = consumer.error(
        "SendMessage",
        {
            "agentName": "lonely",
            "billingMode": "free",
            "requestParts": [{"partId": "text", "text": "x"}],
        },
    )
    assert error["code"] == RPC_AGENT_UNAVAILABLE
    assert error["data"]["code"] == "AGENT_UNAVAILABLE"
    assert "no instance is online" in error["data"]["message"]
    assert consumer.call("ListTasks", {"agentName": "lonely"})["totalCount"] == 0


@pytest.mark.parametrize(
    ("parts", "fragment"),
    [
        ([{"partId": "image", "text": "x"}], "not an input"),
        ([{"partId": "other", "text": "x"}, {"partId": "text", "text": "y"}], "not an input"),
        ([], "requires input"),
    ],
)
def test_part_ids_are_checked_against_the_card(
    consumer: Consumer, agent: FakeAgent, parts: list[object], fragment: str
) -> None:
    error = consumer.error(
        "SendMessage", {"agentName": "worker", "billingMode": "free", "requestParts": parts}
    )
    assert error["code"] == RPC_INVALID_PARAMS
    assert fragment in error["data"]["message"]
    agent.assert_no_control()


def test_pipe_rules(net: LocalNetwork, consumer: Consumer) -> None:
    register_agent(net, "piper", capabilities={"taskKinds": ["request", "pipe"]})
    fake = FakeAgent(net, "piper")
    try:
        base = {
            "agentName": "piper",
            "billingMode": "free",
            "requestParts": [{"partId": "text", "text": "x"}],
        }
        for blocks in (
            {"taskKind": "pipe"},
            {"taskKind": "pipe", "duration": 0},
            {"taskKind": "pipe", "duration": 1.5},
            {"duration": 5},
        ):
            error = consumer.error("SendMessage", {**base, "extensions": {"blocks": blocks}})
            assert error["code"] == RPC_INVALID_PARAMS, blocks
        result = consumer.call(
            "SendMessage", {**base, "extensions": {"blocks": {"taskKind": "pipe", "duration": 2}}}
        )
        start = fake.next_start()
        assert start.task_id == result["taskId"]
        assert start.task_kind == "pipe" and start.duration == 2 and start.has_stream is True
        assert start.duration_expires_at_ms is not None and start.pipe_problem() is None
    finally:
        fake.stop()


def test_request_only_agent_refuses_pipe_tasks(consumer: Consumer, agent: FakeAgent) -> None:
    error = consumer.error(
        "SendMessage",
        {
            "agentName": "worker",
            "billingMode": "free",
            "requestParts": [{"partId": "text", "text": "x"}],
            "extensions": {"blocks": {"taskKind": "pipe", "duration": 3}},
        },
    )
    assert error["code"] == RPC_INVALID_PARAMS and "pipe" in error["data"]["message"]


def test_stream_flag_and_consumer_key_reach_the_instance(
    consumer: Consumer, agent: FakeAgent
) -> None:
    consumer.send("worker", extensions={"blocks": {"stream": True, "consumerPublicKey": "pk-1"}})
    start = agent.next_start()
    assert start.has_stream is True and start.consumer_public_key == "pk-1"


def test_paid_agent_uses_the_network_keyset(net: LocalNetwork, consumer: Consumer) -> None:
    register_agent(net, "pricey", billing_mode="paid")
    fake = FakeAgent(net, "pricey", billing_mode="paid")
    try:
        result = consumer.send("pricey", billing_mode="paid")
        assert (
            result["extensions"]["blocks"]["subscribeKey"] == net.keysets["network"].subscribe_key
        )
        assert fake.next_start().task_id == result["taskId"]
    finally:
        fake.stop()
