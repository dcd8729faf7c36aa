"""send_message → live session against a real local network."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from blocks_network import TaskClient, TaskEvent, text_part
from tests.sdk.consumer.responder import Responder


def test_echo_round_trip(client: TaskClient, agent: Responder) -> None:
    with client.send_message(agent_name="echo", request_parts=[text_part("hi")]) as session:
        terminal = session.wait_for_terminal(timeout=10)
        assert terminal.state == "completed" and terminal.is_terminal
        assert session.state == "completed"
        [ref] = session.list_artifacts()
        assert session.download_artifact(ref).data == b"Echoed request: hi"
        assert [e.type for e in session.events] == ["request", "progress", "artifact", "terminal"]


def test_first_events_are_not_lost(client: TaskClient, agent: Responder) -> None:
    seen: list[str] = []
    done = threading.Event()
    session = client.send_message(agent_name="echo", request_parts=[text_part("x")])
    session.wait_for_terminal(timeout=10)
    # Registered after everything happened: the past is replayed in order.
    session.on_event(lambda e: seen.append(e.type))
    session.on_terminal(lambda e: done.set())
    assert done.is_set()
    assert seen == ["request", "progress", "artifact", "terminal"]
    session.close()


def test_callbacks_see_progress_artifact_terminal(client: TaskClient, agent: Responder) -> None:
    progress: list[TaskEvent] = []
    artifacts: list[TaskEvent] = []
    terminals: list[TaskEvent] = []
    session = client.send_message(agent_name="echo", request_parts=[text_part("cb")])
    session.on_progress(progress.append)
    session.on_artifact(artifacts.append)
    session.on_terminal(terminals.append)
    session.wait_for_terminal(timeout=10)
    assert [p.state for p in progress] == ["running"]
    assert progress[0].progress == 0
    assert artifacts[0].artifact_ref is not None
    assert len(terminals) == 1
    session.close()


def test_finished_sessions_stop_quietly(
    client: TaskClient, agent: Responder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        for i in range(20):
            with client.send_message(agent_name="echo", request_parts=[text_part(str(i))]) as s:
                s.wait_for_terminal(timeout=10)
    # No "Exception in subscribe loop" from an aborted poll, no reconnection attempts.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # Finished sessions' poll threads end (a last one may still be joining); at most the
    # client built in advance for the next session keeps one.
    deadline = time.monotonic() + 5
    while len(_poll_threads()) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_poll_threads()) <= 1


def _poll_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "blocks-pubnub-poll"]
