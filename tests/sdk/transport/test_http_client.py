"""HttpClient: pooled requests; `start` sends now and reads the answer later (a lost answer is
asked for again)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from blocks_network.errors import NetworkError
from blocks_network.transport import http_client
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.retry import RetryPolicy
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
    # A raw server: it drops the first connection unanswered, then answers properly.
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        for answer in (False, True):
            conn, _ = listener.accept()
            with conn:
                requests.append(conn.recv(65536))
                if answer:
                    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}')

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    client = HttpClient()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/publish"
    answer = client.start("POST", url, body=b"{}").result()
    server.join(10)
    listener.close()
    client.close()
    assert answer.status == 200 and answer.json() == {"ok": True}
    assert len(requests) == 2 and all(r.startswith(b"POST /publish") for r in requests)


def test_a_started_request_to_nowhere_raises_network_error_when_read() -> None:
    client = HttpClient(timeout=2.0, retry=RetryPolicy(attempts=2))
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


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/a b", "http://127.0.0.1:1/é", "http://127.0.0.1:1/a\x7f"]
)
def test_a_url_that_cannot_go_on_the_wire_fails_at_once_without_retries(url: str) -> None:
    started = time.monotonic()
    with pytest.raises(NetworkError, match="invalid URL"):
        HttpClient().request("GET", url)
    assert time.monotonic() - started < 0.4  # a retry would sleep 0.5 s first


def _raw_server(
    script: list[str], closed: threading.Semaphore | None = None
) -> tuple[socket.socket, threading.Thread, list[bytes]]:
    """One connection per entry: ``answer-then-close`` answers (keep-alive framing) and then
    closes as an idle timeout would; ``drop`` reads the request and closes unanswered.
    ``closed`` is released after each connection is closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        for action in script:
            conn, _ = listener.accept()
            with conn:
                requests.append(conn.recv(65536))
                if action == "answer-then-close":
                    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}')
            if closed is not None:
                closed.release()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread, requests


def test_result_once_never_resends_and_says_whether_the_request_went_out() -> None:
    listener, server, requests = _raw_server(["drop"])
    client = HttpClient()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/publish"
    with pytest.raises(http_client.AnswerLost):
        client.start("POST", url, body=b"{}").result_once()
    server.join(10)
    listener.close()
    with pytest.raises(http_client.RequestNotSent):
        client.start("POST", url, body=b"{}").result_once()
    client.close()
    assert len(requests) == 1


def test_a_pooled_connection_the_server_closed_while_idle_is_not_used() -> None:
    closed = threading.Semaphore(0)
    listener, server, requests = _raw_server(["answer-then-close"] * 2, closed)
    client = HttpClient()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/publish"
    assert client.start("POST", url, body=b"{}").result_once().status == 200
    assert closed.acquire(timeout=10)
    # The first connection is pooled but closed by the server: the next publish must not go
    # out on it (its outcome would be unknown) but on a new connection.
    answer = client.start("POST", url, body=b"{}").result_once()
    server.join(10)
    listener.close()
    client.close()
    assert answer.status == 200 and len(requests) == 2


def _pipelining_server(answers: int) -> tuple[socket.socket, threading.Thread, list[bytes]]:
    """One connection: reads until three requests arrived (before answering any, so only a
    client that pipelines is answered), then writes ``answers`` of them (bodies ``1``,
    ``2``, ...) in one write and closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while data.count(b"\r\n\r\n") < 3:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            received.append(data)
            conn.sendall(
                b"".join(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % (n + 1)
                    for n in range(answers)
                )
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread, received


def test_pipelined_requests_go_out_before_any_answer_and_answers_are_read_in_order() -> None:
    listener, server, received = _pipelining_server(answers=3)
    client = HttpClient(timeout=10)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/publish"
    first = client.start("POST", url, body=b"a")
    second = first.pipeline("POST", url, body=b"b")
    assert second is not None
    third = second.pipeline("POST", url, body=b"c")
    assert third is not None
    assert first.pipeline("POST", url, body=b"x") is None  # one follower per request
    # Read last first: the answers before it are read (and kept) on the way.
    assert third.result_once().body == b"3"
    assert second.result_once().body == b"2"
    assert first.result_once().body == b"1"
    server.join(10)
    listener.close()
    client.close()
    assert len(received) == 1 and received[0].count(b"POST /publish") == 3


def test_pipelined_requests_behind_a_broken_connection_are_answer_lost() -> None:
    listener, server, _ = _pipelining_server(answers=1)
    client = HttpClient(timeout=10)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/publish"
    first = client.start("POST", url, body=b"a")
    second = first.pipeline("POST", url, body=b"b")
    third = second.pipeline("POST", url, body=b"c") if second is not None else None
    assert second is not None and third is not None
    assert first.result_once().body == b"1"
    for lost in (second, third):  # sent, but the connection closed before their answers
        with pytest.raises(http_client.AnswerLost):
            lost.result_once()
    server.join(10)
    listener.close()
    client.close()


def test_deferred_pipelined_requests_go_out_when_an_answer_is_read() -> None:
    listener, server, received = _pipelining_server(answers=3)
    client = HttpClient(timeout=10)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/publish"
    first = client.start("POST", url, body=b"a")
    second = first.pipeline("POST", url, body=b"b", defer=True)
    third = second.pipeline("POST", url, body=b"c", defer=True) if second else None
    assert second is not None and third is not None
    # Only a read sends them: the server answers nothing before all three arrived.
    assert first.result_once().body == b"1"
    assert third.result_once().body == b"3" and second.result_once().body == b"2"
    server.join(10)
    listener.close()
    client.close()
    assert len(received) == 1 and received[0].count(b"POST /publish") == 3
