"""Stream examples against a local network: echo-stream with stream-consumer,
advanced-stream, stock-sim with its consumer, bidi-chat."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from blocks_network import TaskClient, text_part
from blocks_network.testing import AgentRunner, BlocksTestNetwork

from .conftest import load, start_example


def test_echo_stream_through_the_stream_consumer(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_example(run_agent, "echo-stream")
    consumer = load("stream-consumer", "consumer")
    result = consumer.run(blocks_client, "echo_stream", "to be or not to be")
    assert result["state"] == "completed"
    assert list(result["streams"]) == ["_default"]
    assert b"".join(result["streams"]["_default"]) == b"to be or not to be"
    assert result["artifacts"] == [b"to be or not to be"]
    assert result["errors"] == []


def test_blocks_send_echo_stream_prints_the_answer_once_on_stdout(
    run_agent: AgentRunner, blocks_network: BlocksTestNetwork, tmp_path: Path
) -> None:
    """The README's command: the live words go to stderr (ended by a newline), so
    ``$(blocks send echo_stream "to be or not to be")`` is the artifact alone."""
    start_example(run_agent, "echo-stream")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKS_")}
    command = ["blocks", "send", "echo_stream", "to be or not to be"]
    sent = subprocess.run(
        [sys.executable, "-m", "blocks_network.cli.blocks", *command[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, **blocks_network.env},
        cwd=tmp_path,
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == "to be or not to be\n"
    # The live words sit on lines of their own: a status line for an event of the task
    # channel (whose order against the stream's frames no one promises) ends them first.
    lines = sent.stderr.splitlines()
    assert all("[task]" not in line or line.startswith("[task] ") for line in lines)
    words = [line for line in lines if not line.startswith("[task] ")]
    assert "".join(words) == "to be or not to be"
    assert "[task] stream _default ended" in lines
    assert sent.stderr.endswith("\n")


def test_advanced_stream_three_named_streams(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    # Its own agent name: see test_shared_stream_reopened_replays_only_the_new_writer_s_frames.
    start_example(run_agent, "advanced-stream", name="advanced_stream_named")
    agent = load("advanced-stream")
    consumer = load("advanced-stream", "consumer")
    result = consumer.run(blocks_client, "one two three", agent="advanced_stream_named")
    assert result["words"] == ["one", "two", "three"]
    assert result["audioBytes"] == agent.TONE_BYTES
    assert result["audioSha256"] == hashlib.sha256(agent.tone()).hexdigest()
    assert result["broadcast"]["event"] == "joined"
    assert result["broadcast"]["taskId"] == result["taskId"]
    assert result["streams"]["broadcast"] == ("broadcast", "shared")  # a shared stream's id
    assert result["streams"]["tokens"] == (f"{result['taskId']}-1", "dedicated")
    assert result["state"] == "canceled"  # a pipe task ends when its consumer cancels it
    assert result["summary"] == [{"tokens": 3, "audioBytes": agent.TONE_BYTES, "expired": False}]


def test_advanced_stream_schema_check_rejects_bad_events() -> None:
    agent = load("advanced-stream")
    agent.check_event(agent.TOKENS_SCHEMA, {"index": 0, "token": "a"})
    for bad in ({"index": 0}, {"index": "0", "token": "a"}, {"index": True, "token": "a"}):
        try:
            agent.check_event(agent.TOKENS_SCHEMA, bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} passed the schema check")


def test_stock_sim_feed_until_canceled(run_agent: AgentRunner, blocks_client: TaskClient) -> None:
    start_example(run_agent, "stock-sim")
    consumer = load("stock-sim-consumer", "consumer")
    seen: list[dict[str, object]] = []
    result = consumer.run(
        blocks_client, ["ACME", "INITECH"], ticks=3, interval_s=0.05, on_tick=seen.append
    )
    assert [(e["tick"], e["symbol"]) for e in result["events"]] == [
        (t, s) for t in (1, 2, 3) for s in ("ACME", "INITECH")
    ]
    assert seen == result["events"]
    assert all(isinstance(e["price"], float) and e["price"] > 0 for e in result["events"])
    assert result["state"] == "canceled"
    assert result["summary"]["ticks"] >= 3
    assert result["summary"]["expired"] is False


def test_bidi_chat_answers_in_upper_case_until_bye(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_example(run_agent, "bidi-chat")
    result = load("bidi-chat", "consumer").run(blocks_client, ["hello", "how are you?", "bye"])
    assert result["transcript"] == [
        ("hello", "HELLO"),
        ("how are you?", "HOW ARE YOU?"),
        ("bye", "BYE"),
    ]
    assert result["state"] == "canceled"


def test_shared_stream_reopened_replays_only_the_new_writer_s_frames(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    # The reopened stream reuses stream.{agent}.broadcast, whose replay buffer still holds the
    # first writer's frames (seq 1..); the new writer restarts at seq 1. A reader must start
    # after this task's announcement: no stale frame, and the new ones are not dropped.
    consumer = load("advanced-stream", "consumer")
    first = start_example(run_agent, "advanced-stream", name="advanced_stream_reopen")
    consumer.run(blocks_client, "first", agent="advanced_stream_reopen")
    first.stop()
    start_example(run_agent, "advanced-stream", name="advanced_stream_reopen")
    session = blocks_client.send_message(
        "advanced_stream_reopen", [text_part("second")], task_kind="pipe", duration=1
    )
    with session:
        try:
            broadcast = session.wait_for_stream("broadcast", timeout=15).open()
            event = next(iter(broadcast.events(timeout=5)))
        finally:
            session.cancel()
    assert event["event"] == "joined"
    assert event["taskId"] == session.task_id
