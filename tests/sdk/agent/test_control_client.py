"""The instance's control channel over plain long-polls: filter, heartbeats, token, denial."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from blocks_network.agent.control_client import ControlClient, ControlEvents
from blocks_network.agent.reachability import Reachability
from blocks_network.agent.realtime_http import RealtimeHttp
from blocks_network.agent.scheduler import Scheduler
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.constants import PRESENCE_TIMEOUT_S
from blocks_network.protocol.control import control_filter_expression
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.retry import RetryPolicy
from tests.sdk.stub_server import Recorded, StubServer, stub_server

WAIT = 10.0
INSTANCE = "AG-echo-1"
CHANNEL = "agent.agt_1.control"
KEYSET = Keyset(publish_key="pub-c-1", subscribe_key="sub-c-1")


def _query(request: Recorded) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}


def _is_poll(request: Recorded) -> bool:
    return request.path.startswith("/v2/subscribe/")


class _Recorder:
    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[object, object]] = queue.Queue()
        self.reconnected = threading.Event()
        self.reconnects = 0
        self.denied = threading.Event()
        #: ``reconnects`` at each reported connection loss.
        self.lost: list[int] = []

    def events(self) -> ControlEvents:
        def on_reconnected() -> None:
            self.reconnects += 1
            self.reconnected.set()

        return ControlEvents(
            on_message=lambda message, meta: self.messages.put((message, meta)),
            on_reconnected=on_reconnected,
            on_access_denied=self.denied.set,
            on_connection_lost=lambda: self.lost.append(self.reconnects),
        )


@contextmanager
def control_client(
    server: StubServer, recorder: _Recorder, heartbeat_ms: int | None = None
) -> Iterator[ControlClient]:
    endpoint = RealtimeEndpoint(origin=urlsplit(server.url).netloc, ssl=False)
    http = HttpClient()
    scheduler = Scheduler()
    client = ControlClient(
        instance_id=INSTANCE,
        keyset=KEYSET,
        endpoint=endpoint,
        http=http,
        events=recorder.events(),
        realtime=RealtimeHttp(http, endpoint, INSTANCE, reachability=Reachability(endpoint.origin)),
        scheduler=scheduler,
        heartbeat_ms=heartbeat_ms,
    )
    try:
        yield client
    finally:
        client.close()
        scheduler.close()
        http.close()


def _scripted(polls: list[tuple[int, Any]]) -> Any:
    """Answer polls from ``polls`` in order, then hold-free empty envelopes; others 200."""
    answers = iter(polls)
    release = threading.Event()

    def respond(request: Recorded) -> tuple[int, Any]:
        if not _is_poll(request):
            return 200, {"status": 200, "message": "OK", "service": "Presence"}
        answer = next(answers, None)
        if answer is None:
            release.wait(0.2)  # an idle long-poll, kept short so the test ends quickly
            return 200, {"t": {"t": "900", "r": 1}, "m": []}
        return answer

    return respond


def test_polls_carry_the_filter_heartbeat_token_and_deliver_messages_with_meta() -> None:
    recorder = _Recorder()
    start_task = {"type": "StartTask", "taskId": "t_1"}
    meta = {"instance": INSTANCE}
    respond = _scripted(
        [
            (200, {"t": {"t": "100", "r": 1}, "m": []}),
            (
                200,
                {
                    "t": {"t": "200", "r": 1},
                    "m": [{"c": CHANNEL, "d": start_task, "u": meta, "p": {"t": "150", "r": 1}}],
                },
            ),
        ]
    )
    with stub_server(respond) as server, control_client(server, recorder) as client:
        assert client.subscribe(CHANNEL, "control-token", WAIT)
        assert recorder.messages.get(timeout=WAIT) == (start_task, meta)
        server.wait_requests(3)
        polls = [_query(r) for r in server.requests if _is_poll(r)]
    assert polls[0]["tt"] == "0"
    assert (polls[1]["tt"], polls[2]["tt"]) == ("100", "200")
    for query in polls:
        assert query["filter-expr"] == control_filter_expression(INSTANCE)
        assert query["heartbeat"] == str(PRESENCE_TIMEOUT_S)
        assert query["auth"] == "control-token"
        assert query["uuid"] == INSTANCE
    assert recorder.reconnects == 1  # the first connection is announced once


def test_a_new_token_is_used_from_the_next_poll() -> None:
    recorder = _Recorder()
    first_answered = threading.Event()
    go_on = threading.Event()
    seen: list[str] = []

    def respond(request: Recorded) -> tuple[int, Any]:
        if not _is_poll(request):
            return 200, {}
        seen.append(_query(request).get("auth", ""))
        if len(seen) == 2:
            first_answered.set()
            go_on.wait(WAIT)  # held until the token changed
        return 200, {"t": {"t": str(100 + len(seen)), "r": 1}, "m": []}

    with stub_server(respond) as server, control_client(server, recorder) as client:
        assert client.subscribe(CHANNEL, "old", WAIT)
        assert first_answered.wait(WAIT)
        client.set_token("new")
        go_on.set()
        server.wait_requests(3)
    assert seen[:3] == ["old", "old", "new"]


def test_access_denied_is_reported_once_and_polling_stops() -> None:
    recorder = _Recorder()
    respond = _scripted([(403, {"status": 403, "error": True, "message": "Forbidden"})])
    with stub_server(respond) as server, control_client(server, recorder) as client:
        assert not client.subscribe(CHANNEL, "revoked", 1.0)
        assert recorder.denied.wait(WAIT)
        polls = [r for r in server.requests if _is_poll(r)]
    assert len(polls) == 1


def test_heartbeats_are_sent_every_interval_with_the_current_token() -> None:
    recorder = _Recorder()
    with (
        stub_server(_scripted([])) as server,
        control_client(server, recorder, heartbeat_ms=1000) as client,
    ):
        assert client.subscribe(CHANNEL, "tok", WAIT)
        client.set_token("tok-2")

        def heartbeats() -> list[Recorded]:
            return [r for r in server.requests if "/heartbeat" in r.path]

        with server.called:
            assert server.called.wait_for(lambda: len(heartbeats()) >= 2, WAIT)
        beat = heartbeats()[-1]
    assert urlsplit(beat.path).path == f"/v2/presence/sub-key/sub-c-1/channel/{CHANNEL}/heartbeat"
    assert _query(beat)["heartbeat"] == str(PRESENCE_TIMEOUT_S)
    assert _query(beat)["auth"] == "tok-2"


def test_after_failed_polls_the_next_answer_is_announced_as_a_reconnection(
    monkeypatch: Any,
) -> None:
    from blocks_network.transport import subscription

    monkeypatch.setattr(subscription, "RETRY", RetryPolicy(None, 0.01, 0.02))
    recorder = _Recorder()
    respond = _scripted(
        [
            (200, {"t": {"t": "100", "r": 1}, "m": []}),
            (500, {"error": True}),
            (500, {"error": True}),
            (200, {"t": {"t": "100", "r": 1}, "m": []}),
        ]
    )
    with stub_server(respond) as server, control_client(server, recorder) as client:
        assert client.subscribe(CHANNEL, "tok", WAIT)
        server.wait_requests(4)
        with server.called:
            assert server.called.wait_for(lambda: recorder.reconnects >= 2, WAIT)
        polls = [_query(r)["tt"] for r in server.requests if _is_poll(r)]
    assert polls[:4] == ["0", "100", "100", "100"]  # retried from the same cursor


def test_close_ends_the_control_thread() -> None:
    recorder = _Recorder()
    with stub_server(_scripted([])) as server:
        with control_client(server, recorder) as client:
            assert client.subscribe(CHANNEL, "tok", WAIT)
        alive = [t for t in threading.enumerate() if t.name == "blocks-agent-control"]
    assert alive == []


def test_each_failed_poll_is_reported_from_the_first_on(monkeypatch: Any) -> None:
    from blocks_network.transport import subscription

    monkeypatch.setattr(subscription, "RETRY", RetryPolicy(None, 0.01, 0.02))
    recorder = _Recorder()
    answered = (200, {"t": {"t": "100", "r": 1}, "m": []})
    respond = _scripted([answered, *[(500, {"error": True})] * 3, answered])
    with stub_server(respond) as server, control_client(server, recorder) as client:
        assert client.subscribe(CHANNEL, "tok", WAIT)
        with server.called:
            assert server.called.wait_for(lambda: recorder.reconnects >= 2, WAIT)
    # Reported at each failed poll, from the first one (the instance re-announces presence
    # at once, and again in case a state went to a network on its way down); the answered
    # poll after them is the reconnection.
    assert recorder.lost == [1, 1, 1]


def test_a_control_channel_outage_is_one_warning_and_one_reconnection(
    monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed polls report to the instance's Reachability (the only way now): one WARNING
    naming the host, a DEBUG per retry, one INFO when the network answers again."""
    from blocks_network.transport import subscription

    monkeypatch.setattr(subscription, "RETRY", RetryPolicy(None, 0.01, 0.02))
    recorder = _Recorder()
    answered = (200, {"t": {"t": "100", "r": 1}, "m": []})
    respond = _scripted([answered, *[(500, {"error": True})] * 3, answered])
    with (
        caplog.at_level(logging.DEBUG, logger="blocks_network.agent.reachability"),
        stub_server(respond) as server,
        control_client(server, recorder) as client,
    ):
        assert client.subscribe(CHANNEL, "tok", WAIT)
        with server.called:
            assert server.called.wait_for(lambda: recorder.reconnects >= 2, WAIT)
        host = urlsplit(server.url).netloc
    told = [(r.levelno, r.getMessage()) for r in caplog.records if "control" in r.name]
    assert told == [], told  # nothing logged "the old way" by the control client itself
    story = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith("reachability")]
    assert [level for level, _ in story] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
        logging.INFO,
    ]
    assert host in story[0][1] and host in story[-1][1] and "reconnected" in story[-1][1]


def test_the_realtime_client_needs_a_reachability() -> None:
    """Every caller reports outages through one Reachability; there is no other way."""
    endpoint = RealtimeEndpoint(origin="127.0.0.1:9", ssl=False)
    with pytest.raises(TypeError, match="reachability"):
        RealtimeHttp(HttpClient(), endpoint, INSTANCE)  # type: ignore[call-arg]
