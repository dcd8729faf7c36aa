"""Threads and PubNub clients of an instance do not grow with the number of tasks it ran."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from blocks_network.agent import control_client, instance
from blocks_network.consumer import TaskClient, text_part
from blocks_network.handlers.echo import echo_handler
from tests.sdk.agent.conftest import AgentFactory


def _agent_threads() -> set[str]:
    return {
        t.name
        for t in threading.enumerate()
        if t.name.startswith("blocks-task-") or t.name.startswith("blocks-agent-")
    }


#: Threads the in-process consumer owns (session polls, its pubnub clients, token timers).
_CONSUMER_THREADS = ("blocks-session-poll", "blocks-pubnub-poll", "blocks-auth-refresh")


def _threads_outside_consumer() -> int:
    return sum(1 for t in threading.enumerate() if not t.name.startswith(_CONSUMER_THREADS))


def test_threads_and_clients_stay_flat(
    start_agent: AgentFactory, consumer: TaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[Any] = []
    for module in (control_client, instance):
        original = module.create_pubnub

        def counting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            client = _original(*args, **kwargs)
            created.append(client)
            return client

        monkeypatch.setattr(module, "create_pubnub", counting)

    start_agent(agent_name="echo", handler=echo_handler, concurrency=4)

    def batch(count: int) -> None:
        sessions = [consumer.send_message("echo", [text_part(str(i))]) for i in range(count)]
        for session in sessions:
            assert session.wait_for_terminal(timeout=20).state == "completed"
            session.close()

    batch(8)
    total_after_warmup = _threads_outside_consumer()
    for _ in range(4):
        # Ten at a time: 4 running plus a backlog of 10 is all the network holds for an
        # agent; a consumer submitting faster than the agent works gets "busy" refusals.
        batch(10)
    workers = {t for t in _agent_threads() if t.startswith("blocks-task-")}
    assert len(workers) <= 4
    assert _agent_threads() - workers <= {
        "blocks-agent-control",
        "blocks-agent-presence",
        "blocks-agent-timer",
    }
    # Warm-up may not have needed all 4 workers; nothing else may appear. The consumer in
    # this process keeps a pool of session poll threads sized to its concurrent sessions:
    # those are the consumer's, not the instance's, so they are left out of the count.
    assert _threads_outside_consumer() <= total_after_warmup + 4
    # One control client for the instance's whole life; none per task.
    assert len(created) == 1
