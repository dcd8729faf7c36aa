"""Task events the network did not take wait and are retried: in order, at most once, until
the task's deadline, and never past ``close()``. Against a scripted PubNub-like HTTP server
that stores publishes and serves them back as history."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from blocks_network.agent import outbox
from blocks_network.agent.artifacts import ArtifactUploader
from blocks_network.agent.credentials import TaskCredentials
from blocks_network.agent.outbox import EventOutbox
from blocks_network.agent.reachability import Reachability
from blocks_network.agent.realtime_http import PublishOutcome, RealtimeHttp
from blocks_network.agent.scheduler import Scheduler
from blocks_network.agent.task_runner import RunnerConfig, TaskRunner
from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.retry import RetryPolicy
from tests.sdk.stub_server import DROP, Recorded, stub_server

KEYSET = Keyset("pub", "sub")
WAIT = 10.0


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "RETRY", RetryPolicy(None, 0.01, 0.05, (0.5, 1.0)))


@dataclass
class FakeChannels:
    """Stores publishes with increasing timetokens; ``script`` says what each publish does:
    ``ok``; ``stored-lost`` (stored, the answer never comes); ``lost`` (not stored, no
    answer). Unscripted publishes are ``ok``. History is down while ``history_down``."""

    script: list[str] = field(default_factory=list)
    stored: list[Any] = field(default_factory=list)
    history_down: bool = False
    history_reads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The client (host, port) of each publish: one per connection.
    publishers: list[tuple[str, int]] = field(default_factory=list)

    def respond(self, request: Recorded) -> tuple[int, Any]:
        path = urlsplit(request.path).path
        with self.lock:
            if path.startswith("/publish/"):
                self.publishers.append(request.client)
                action = self.script.pop(0) if self.script else "ok"
                if action != "lost":
                    self.stored.append(json.loads(request.body))
                if action != "ok":
                    return DROP, None
                return 200, [1, "Sent", str(len(self.stored))]
            if path.startswith("/v3/history/"):
                self.history_reads += 1
                if self.history_down:
                    return DROP, None
                channel = unquote(path.rsplit("/", 1)[1])
                items = [{"message": m, "timetoken": str(i + 1)} for i, m in enumerate(self.stored)]
                return 200, {"status": 200, "channels": {channel: items}, "error": False}
        return 404, {"error": True}


def _event(n: int, kind: str = "progress") -> dict[str, Any]:
    return {"type": kind, "taskId": "t_1", "message": f"event {n}"}


def _creds(deliver_within: float = 60.0) -> TaskCredentials:
    return TaskCredentials(
        task_id="t_1",
        owner_id="o",
        org_id="org_1",
        write_token="tok",
        agent_name="a",
        environment=None,
        deliver_by=time.monotonic() + deliver_within,
    )


@contextmanager
def runner_on(
    channels: FakeChannels,
    on_active_changed: Callable[[int, bool], None] | None = None,
    *,
    pipelining: bool = False,
) -> Iterator[TaskRunner]:
    with stub_server(channels.respond, keep_alive=pipelining) as server:
        http = HttpClient()
        realtime = RealtimeHttp(
            http,
            RealtimeEndpoint(origin=urlsplit(server.url).netloc, ssl=False),
            "AG-a-1",
            pipelining=pipelining,
            reachability=Reachability(urlsplit(server.url).netloc),
        )
        config = RunnerConfig(
            agent_name="a",
            instance_id="AG-a-1",
            handler=None,
            on_error=None,
            inline_limit=16384,
            keyset_for=lambda _env: KEYSET,
            environment=lambda: None,
            on_active_changed=on_active_changed or (lambda _count, _now: None),
            task_client=lambda: None,
            task_pubnub=lambda _creds: None,
        )
        scheduler = Scheduler()
        runner = TaskRunner(
            config,
            realtime=realtime,
            submit=lambda fn: fn(),
            scheduler=scheduler,
            uploader=ArtifactUploader(http, None),
        )
        try:
            yield runner
        finally:
            runner.close()
            scheduler.close()
            http.close()


def _messages(channels: FakeChannels) -> list[str]:
    with channels.lock:
        return [m["message"] for m in channels.stored]


def test_events_wait_out_lost_answers_in_order_and_are_stored_once() -> None:
    # event 1 goes through; event 2 is stored but its answer is lost (the history check
    # must find it and not resend it); event 3's first try is lost unstored (resent).
    channels = FakeChannels(script=["ok", "stored-lost", "lost"])
    with runner_on(channels) as runner:
        creds = _creds()
        assert runner.publish_event(creds, _event(1))
        assert not runner.publish_event(creds, _event(2))  # handed over, not blocking
        runner.publish_event(creds, _event(3), wait=False)
        runner.publish_event(creds, _event(4, "terminal"))
        assert runner.flush(creds)
        assert runner.waiting_events == 0
    assert _messages(channels) == ["event 1", "event 2", "event 3", "event 4"]


def test_a_task_counts_active_while_its_events_wait() -> None:
    # The network has not seen the task end while its terminal waits: the announced count
    # keeps it, and drops it (announced again) once the network took the terminal.
    channels = FakeChannels(script=["lost", "lost"])
    announced: list[int] = []
    with runner_on(channels, lambda count, _now: announced.append(count)) as runner:
        creds = _creds()
        runner.publish_event(creds, _event(1, "terminal"))
        assert runner.announced_count == 1  # nothing runs here, but the terminal waits
        assert runner.active_count == 0  # ... and it holds no handler slot
        assert runner.flush(creds)
        assert runner.announced_count == 0
        assert announced[-1] == 0
    assert _messages(channels) == ["event 1"]


def test_an_unreadable_history_is_retried_rather_than_guessed() -> None:
    channels = FakeChannels(script=["stored-lost"], history_down=True)
    with runner_on(channels) as runner:
        creds = _creds()
        runner.publish_event(creds, _event(1))
        deadline = time.monotonic() + WAIT
        while channels.history_reads < 3:  # retried while the history cannot be read
            assert time.monotonic() < deadline, "the outbox stopped checking the history"
            time.sleep(0.01)
        assert _messages(channels) == ["event 1"]  # never resent blind
        channels.history_down = False
        assert runner.flush(creds)
    assert _messages(channels) == ["event 1"]


def test_events_are_given_up_at_the_tasks_deadline(caplog: pytest.LogCaptureFixture) -> None:
    channels = FakeChannels(script=["lost"] * 10_000)
    with runner_on(channels) as runner:
        creds = _creds(deliver_within=0.5)
        with caplog.at_level(logging.ERROR, logger="blocks_network.agent.outbox"):
            runner.publish_event(creds, _event(1))
            runner.publish_event(creds, _event(2, "terminal"))
            assert not runner.flush(creds)
            assert runner.waiting_events == 0
    assert "gave up on 2 event(s) (progress, terminal)" in caplog.text
    assert _messages(channels) == []


def test_close_interrupts_waiting_events(caplog: pytest.LogCaptureFixture) -> None:
    channels = FakeChannels(script=["lost"] * 10_000)
    with runner_on(channels) as runner:
        creds = _creds()
        runner.publish_event(creds, _event(1, "terminal"))
        flushed: list[bool] = []
        waiter = threading.Thread(target=lambda: flushed.append(runner.flush(creds)))
        waiter.start()
        with caplog.at_level(logging.ERROR, logger="blocks_network.agent.outbox"):
            assert runner.close() == 1
        waiter.join(WAIT)
        assert flushed == [False]
        alive = [t for t in threading.enumerate() if t.name == "blocks-agent-outbox"]
        assert alive == []
    assert "1 task event(s) of 1 task(s) were never taken by the network" in caplog.text


def _failing_outbox(**limits: int) -> tuple[EventOutbox, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def send(creds: TaskCredentials, wire: dict[str, Any]) -> PublishOutcome:
        sent.append(wire)
        return PublishOutcome("unsent", "down")

    def stored(_creds: TaskCredentials, _wire: dict[str, Any], _after: int | None) -> None:
        return None

    return EventOutbox(send, stored, **limits), sent


def test_memory_is_bounded_and_terminals_are_always_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    box, _sent = _failing_outbox(max_events_per_task=2)
    creds = _creds()
    try:
        with (
            caplog.at_level(logging.ERROR, logger="blocks_network.agent.outbox"),
            creds.publish_lock,
        ):
            box.hand_over(creds, _event(1), uncertain=False)
            for n in (2, 3):
                box.append(creds, _event(n))
            box.append(creds, _event(4, "terminal"))
            assert creds.backlog is not None
            kept = [e.wire["message"] for e in creds.backlog.events]
    finally:
        box.close()
    assert kept == ["event 1", "event 2", "event 4"]
    assert "task t_1: progress event DROPPED" in caplog.text


@pytest.mark.parametrize(
    ("script", "sent"),
    [
        # Nothing stored: both are resent, in order.
        (["lost"], ["event 1", "event 2", "event 3"]),
        # Event 1 stored, the connection breaks: event 2 (sent behind it) never was.
        (["stored-lost"], ["event 1", "event 2", "event 3"]),
        # Event 2 stored, its answer lost: found in the history, not resent.
        (["ok", "stored-lost"], ["event 1", "event 2", "event 3"]),
    ],
)
@pytest.mark.parametrize("gathering", [False, True])
def test_pipelined_events_on_a_broken_connection_go_to_the_outbox_and_are_stored_once(
    script: list[str], sent: list[str], gathering: bool
) -> None:
    channels = FakeChannels(script=list(script))
    with runner_on(channels, pipelining=True) as runner:
        creds = _creds()
        runner.publish_event(creds, _event(1), wait=False)
        creds.gathering = gathering
        runner.publish_event(creds, _event(2), wait=False)
        assert len(creds.pending) == 2  # pipelined behind event 1
        runner.publish_event(creds, _event(3, "terminal"))
        assert runner.flush(creds)
        assert runner.waiting_events == 0
    assert _messages(channels) == sent


@pytest.mark.parametrize("gathering", [False, True])
def test_pipelined_events_share_a_connection_and_keep_their_order(gathering: bool) -> None:
    channels = FakeChannels()
    with runner_on(channels, pipelining=True) as runner:
        creds = _creds()
        runner.publish_event(creds, _event(1), wait=False)
        creds.gathering = gathering  # event 2 then goes out in one write with event 3
        runner.publish_event(creds, _event(2), wait=False)
        assert len(creds.pending) == 2  # sent before event 1's answer was read
        assert runner.publish_event(creds, _event(3, "terminal"))
        assert runner.waiting_events == 0
        assert creds.last_answer is not None and creds.last_answer.timetoken == 3
    assert _messages(channels) == ["event 1", "event 2", "event 3"]
    assert len(set(channels.publishers)) == 1
