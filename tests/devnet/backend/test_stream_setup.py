"""The stream-setup hook: a publish on setup.{org}.{task} answered with a 403 (§8.2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pubnub.exceptions import PubNubException

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.channels import setup_channel, stream_channel
from blocks_network.protocol.control import StartTask
from blocks_network.protocol.events import parse_task_event
from blocks_network.protocol.stream_setup import (
    StreamSetup,
    StreamSetupFailure,
    StreamSetupOk,
    StreamSetupResult,
    StreamStarted,
    parse_stream_setup_rejection,
)
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent


@pytest.fixture
def agent(net: LocalNetwork) -> Iterator[FakeAgent]:
    register_agent(net, "streamer")
    fake = FakeAgent(net, "streamer", concurrency=0)
    yield fake
    fake.stop()


def setup_message(task: StartTask, stream_id: str, **changes: Any) -> dict[str, Any]:
    wire = StreamSetup(
        task_id=task.task_id,
        org_id=task.resolved_org_id,
        agent_name="streamer",
        stream_id=stream_id,
        channel=stream_channel("streamer", stream_id),
        direction="outbound",
        task_kind="request",
        duration_minutes=1,
        format="events",
        affinity="dedicated",
        declared_stream="_default",
        phase="embedded",
        metadata={"k": "v"},
    ).to_wire()
    wire.update(changes)
    return {k: v for k, v in wire.items() if v is not None}


def handshake(agent: FakeAgent, task: StartTask, message: dict[str, Any]) -> StreamSetupResult:
    channel = setup_channel(task.resolved_org_id, task.task_id)
    with pytest.raises(PubNubException) as rejected:
        agent.publish_on(task.write_token, channel, message, store=False)
    assert rejected.value.get_status_code() == 403
    return parse_stream_setup_rejection(rejected.value._errormsg)


def streaming_task(consumer: Consumer, agent: FakeAgent) -> tuple[dict[str, Any], StartTask]:
    result = consumer.send("streamer", extensions={"blocks": {"stream": True}})
    task = agent.next_start()
    assert task.has_stream
    return result, task


def test_handshake_answers_403_with_tokens_and_announces_the_stream(
    net: LocalNetwork, consumer: Consumer, agent: FakeAgent
) -> None:
    result, task = streaming_task(consumer, agent)
    stream_id = f"{task.task_id}-1"
    answer = handshake(agent, task, setup_message(task, stream_id))
    assert isinstance(answer, StreamSetupOk)
    assert (answer.task_id, answer.stream_id, answer.phase, answer.direction) == (
        task.task_id,
        stream_id,
        "embedded",
        "outbound",
    )
    assert answer.channel == stream_channel("streamer", stream_id)
    assert answer.token_ttl_minutes == 1 and answer.token

    events = [parse_task_event(m) for m in consumer.history(result)]
    started = [e for e in events if isinstance(e, StreamStarted)]
    assert len(started) == 1
    entry = started[0].streams[stream_id]
    assert (entry.channel, entry.direction, entry.format, entry.affinity) == (
        answer.channel,
        "outbound",
        "events",
        "dedicated",
    )
    assert entry.token_ttl_minutes == 1 and entry.metadata == {"k": "v"}
    assert started[0].declared_stream == "_default"
    assert entry.token != answer.token

    # The writer token (T7a) writes frames on the stream channel; nothing else does.
    agent.publish_on(answer.token, answer.channel, {"type": "stream_events", "seq": 1}, store=False)
    with pytest.raises(PubNubException):
        agent.publish_on(
            entry.token, answer.channel, {"type": "stream_events", "seq": 2}, store=False
        )

    # At the terminal the stream tokens are revoked (no drain delay in these settings).
    agent.complete(task)
    with pytest.raises(PubNubException) as revoked:
        agent.publish_on(
            answer.token, answer.channel, {"type": "stream_events", "seq": 3}, store=False
        )
    assert revoked.value.get_status_code() == 403


def test_stream_not_negotiated_is_a_failed_precondition(
    consumer: Consumer, agent: FakeAgent
) -> None:
    consumer.send("streamer")
    task = agent.next_start()
    answer = handshake(agent, task, setup_message(task, f"{task.task_id}-1"))
    assert isinstance(answer, StreamSetupFailure)
    assert answer.code == "FailedPrecondition" and "not negotiated" in answer.message


@pytest.mark.parametrize(
    "changes",
    [
        {"affinity": None},
        {"channel": "stream.streamer.elsewhere"},
        {"agentName": "other_agent"},
        {"taskId": "t_other"},
        {"direction": "inbound"},
        {"durationMinutes": 0},
        {"streamId": "bad.id"},
    ],
)
def test_invalid_setups_are_refused_with_invalid_argument(
    consumer: Consumer, agent: FakeAgent, changes: dict[str, Any]
) -> None:
    _result, task = streaming_task(consumer, agent)
    answer = handshake(agent, task, setup_message(task, f"{task.task_id}-1", **changes))
    assert isinstance(answer, StreamSetupFailure)
    assert answer.code == "InvalidArgument", answer


def test_setup_after_the_terminal_is_refused(consumer: Consumer, agent: FakeAgent) -> None:
    _result, task = streaming_task(consumer, agent)
    agent.complete(task)
    channel = setup_channel(task.resolved_org_id, task.task_id)
    # The write token died with the task, so Access Manager refuses before the hook runs.
    with pytest.raises(PubNubException) as denied:
        agent.publish_on(
            task.write_token, channel, setup_message(task, f"{task.task_id}-1"), store=False
        )
    assert denied.value.get_status_code() == 403
    assert "streamSetupResponse" not in denied.value._errormsg


def test_stream_frames_are_written_in_bulk_and_nothing_else(net: LocalNetwork) -> None:
    messages = net.context.realtime.messages
    names = (stream_channel("echo", "t_1-1"), "u.org.t_1", setup_channel("org", "t_1"), "stream.x")
    decide = net.call(lambda: [messages.defers_unstored(name) for name in names])
    assert decide == [True, False, False, False]
