"""HttpClient.start: send now, read the answer later; a lost answer is asked for again."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_network.errors import NetworkError
from blocks_network.transport import http_client
from blocks_network.transport.http_client import HttpClient
from tests.sdk.stub_server import Recorded, dead_url, stub_server


def test_a_started_request_is_answered_when_read_while_other_requests_go_out() -> None:
    seen: list[str] = []

    def respond(request: Recorded) -> tuple[int, Any]:
        seen.append(request.path)
        return 200, {"path": request.path, "body": request.body.decode()}

    client = HttpClient()
    with stub_server(respond) as server:
        pending = client.start("POST", f"{server.url}/first", body=b"one")
        server.wait_requests(1)
        other = client.request("GET", f"{server.url}/second")
        answer = pending.result()
        assert pending.result() is answer  # read once, kept
    client.close()
    assert other.json()["path"] == "/second"
    assert answer.status == 200 and answer.json() == {"path": "/first", "body": "one"}
    assert seen == ["/first", "/second"]


def test_a_started_request_whose_connection_dies_is_sent_again() -> None:
    calls: list[int] = []

    def respond(request: Recorded) -> tuple[int, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionAbortedError("the server drops the first request unanswered")
        return 200, {"ok": True}

    client = HttpClient()
    with stub_server(respond) as server:
        answer = client.start("POST", f"{server.url}/publish", body=b"{}").result()
    client.close()
    assert answer.status == 200 and answer.json() == {"ok": True}
    assert len(calls) == 2


def test_a_started_request_to_nowhere_raises_network_error_when_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_client, "TRANSIENT_ATTEMPTS", 2)
    client = HttpClient(timeout=2.0)
    pending = client.start("POST", f"{dead_url()}/publish", body=b"{}")
    with pytest.raises(NetworkError, match="could not reach"):
        pending.result()


def test_several_started_requests_in_flight_each_get_their_own_answer() -> None:
    client = HttpClient()
    with stub_server(lambda r: (200, {"path": r.path})) as server:
        pendings = [client.start("GET", f"{server.url}/{i}") for i in range(3)]
        answers = [p.result().json()["path"] for p in reversed(pendings)]
    client.close()
    assert answers == ["/2", "/1", "/0"]
