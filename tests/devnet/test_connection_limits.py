"""Timeouts on every connection, and a network that keeps serving at its descriptor limit.

A network in its own process with 256 descriptors gets more half-sent requests than it has
descriptors; normal requests (the time probe, a publish with the official client) must keep
succeeding, the stalled connections must be closed, and the log must stay small. In-process
servers with short timeouts check each timeout on both protocols (the fast path's and
aiohttp's, ``fast_path=False``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from aiohttp import web
from pubnub.pubnub import PubNub

from blocks_devnet.connection_guard import ConnectionTimeouts
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.server import RealtimeServer
from tests.devnet.raw_exchange import RawClient, exchange, get, post
from tests.support.pubnub_clients import make_config

OPEN = Keyset.generate("open-limits")
PUB, SUB = OPEN.publish_key, OPEN.subscribe_key
#: Descriptors of the network process under attack, and half-sent requests against it.
FD_LIMIT = 256
ATTACKERS = 320
#: Short timeouts, so the tests wait seconds rather than minutes.
SHORT = ConnectionTimeouts(
    head_seconds=1.0,
    idle_seconds=3.0,
    body_min_bytes=4096,
    body_window_seconds=1.0,
    send_seconds=1.0,
)
#: Generous bounds on every wait (a loaded 2-core machine is slow, never wrong).
WAIT_S = 30.0
START_S = 60.0


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """True once the server closed ``sock`` (EOF or reset), False at ``deadline``."""
    sock.settimeout(max(0.0, deadline - time.monotonic()))
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


# --- a network process at its descriptor limit -----------------------------------------------


class NetworkProcess:
    """A local network in a subprocess with ``FD_LIMIT`` descriptors and short timeouts."""

    def __init__(self, data_dir: Path, log: IO[str]) -> None:
        def low_limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

        # Heads time out after 5 s: long enough for the attack to reach the limit first.
        timeouts = [5.0, 60.0, SHORT.body_min_bytes, SHORT.body_window_seconds]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.devnet.network_process", str(data_dir)]
            + [str(value) for value in timeouts],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            preexec_fn=low_limit,
            cwd=Path(__file__).parents[2],  # where ``tests`` is a package
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the process prints it once serving
        assert line, "the network process exited before serving; see its log"
        ready = json.loads(line)
        self.url: str = ready["url"]
        self.origin: str = ready["origin"]
        self.port = int(self.origin.rsplit(":", 1)[1])
        self.keyset = Keyset(**ready["keyset"])

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(WAIT_S)


@pytest.fixture
def network_process(tmp_path: Path) -> Iterator[tuple[NetworkProcess, Path]]:
    log_path = tmp_path / "network.log"
    with log_path.open("w") as log:
        network = NetworkProcess(tmp_path / "data", log)
        try:
            yield network, log_path
        finally:
            network.stop()


def _half_sent_requests(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send half a request head and wait."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))  # queued in the backlog if not accepted yet
        sockets.append(sock)
    for sock in sockets:
        sock.setblocking(True)
        sock.settimeout(WAIT_S)
        sock.sendall(b"GET /time/0 HTTP/1.1\r\nHost: x\r\nX-Wait: ")
    return sockets


def _time_probe(url: str) -> int:
    with urllib.request.urlopen(f"{url}/time/0", timeout=WAIT_S) as answer:
        assert answer.status == 200
        return int(json.loads(answer.read())[0])


def _publish(network: NetworkProcess, message: str) -> None:
    pubnub = PubNub(make_config(network.origin, network.keyset, "limits", secret=True))
    try:
        envelope = pubnub.publish().channel("limits").message(message).sync()
        assert envelope.status.is_error() is False
    finally:
        pubnub.stop()


@pytest.mark.timeout(240)
def test_half_sent_requests_beyond_the_descriptor_limit_do_not_stop_the_network(
    network_process: tuple[NetworkProcess, Path],
) -> None:
    network, log_path = network_process
    with contextlib.closing(RawClient(network)) as served:  # answered, then idle: not half-sent
        served.sock.sendall(get("/time/0"))
        assert served.response()[0] == 200
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft > ATTACKERS + 64, "this test needs more descriptors than the network has"
    attackers = _half_sent_requests(network.port, ATTACKERS)
    try:
        # While they are on: normal requests are answered.
        assert _time_probe(network.url) > 0
        _publish(network, "during")
        # Every half-sent request is closed by the server (after its head timeout).
        deadline = time.monotonic() + WAIT_S
        assert all(_closed_by_server(sock, deadline) for sock in attackers)
    finally:
        for sock in attackers:
            sock.close()
    assert _time_probe(network.url) > 0
    _publish(network, "after")
    log = log_path.read_text()
    assert "cannot accept connections" in log  # the limit was reached...
    assert "Traceback" not in log  # ...quietly
    assert len(log.splitlines()) < 20, log[-3000:]


# --- each timeout, on both protocols ------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["fast-path", "aiohttp"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RealtimeServer]:
    with RealtimeServer(
        [OPEN], data_dir=tmp_path, fast_path=request.param, timeouts=SHORT, long_poll_seconds=4
    ) as running:
        yield running


@pytest.mark.parametrize(
    "half",
    [b"GET /time/0 HTTP/1.1\r\nHost: x\r\n", b"PUT /anything HTTP/1.1\r\nHost: x\r\n", b""],
    ids=["fast-route head", "other head", "nothing"],
)
def test_a_request_head_that_does_not_arrive_is_closed(server: RealtimeServer, half: bytes) -> None:
    with contextlib.closing(RawClient(server)) as client:
        client.sock.sendall(half)
        started = time.monotonic()
        assert _closed_by_server(client.sock, started + WAIT_S)
        assert time.monotonic() - started >= SHORT.head_seconds * 0.75


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    server: RealtimeServer,
) -> None:
    with contextlib.closing(RawClient(server)) as client:
        client.sock.sendall(get("/time/0"))
        assert client.response()[0] == 200
        answered = time.monotonic()
        assert _closed_by_server(client.sock, answered + WAIT_S)
        # Idle, not the (shorter) head timeout; the sweep may run a fraction early.
        assert time.monotonic() - answered >= SHORT.idle_seconds - SHORT.head_seconds / 2


def test_a_held_long_poll_is_not_closed_by_the_idle_timeout(server: RealtimeServer) -> None:
    with contextlib.closing(RawClient(server)) as client:
        client.sock.sendall(get(f"/v2/subscribe/{SUB}/room/0?tt=0&uuid=u1"))
        status, _, body = client.response()
        timetoken = json.loads(body)["t"]["t"]
        # Held for long_poll_seconds (4 s), longer than the idle (3 s) and head (1 s) timeouts.
        client.sock.sendall(get(f"/v2/subscribe/{SUB}/room/0?tt={timetoken}&uuid=u1"))
        status, _, body = client.response()
        assert status == 200 and json.loads(body)["m"] == []


def _trickle(client: RawClient, body: bytes, chunk: int, pause: float) -> None:
    for start in range(0, len(body), chunk):
        client.sock.sendall(body[start : start + chunk])
        time.sleep(pause)  # pacing the sender, not waiting for the server


def test_a_body_at_the_minimum_rate_is_served(server: RealtimeServer) -> None:
    message = b'"' + b"x" * 24_000 + b'"'
    request = post(f"/publish/{PUB}/{SUB}/0/room/0?uuid=u1", message)
    head_end = request.index(b"\r\n\r\n") + 4
    with contextlib.closing(RawClient(server)) as client:
        client.sock.sendall(request[:head_end])
        # 3 windows long, at three times the minimum rate.
        _trickle(client, request[head_end:], SHORT.body_min_bytes * 3 // 4, 0.25)
        status, _, body = client.response()
    assert status == 200 and json.loads(body)[1] == "Sent"


def test_a_stalled_body_is_closed(server: RealtimeServer) -> None:
    request = post(f"/publish/{PUB}/{SUB}/0/room/0?uuid=u1", b'"' + b"x" * 20_000 + b'"')
    with contextlib.closing(RawClient(server)) as client:
        client.sock.sendall(request[: request.index(b"\r\n\r\n") + 100])
        started = time.monotonic()
        assert _closed_by_server(client.sock, started + WAIT_S)
        assert time.monotonic() - started >= SHORT.body_window_seconds * 0.75


def test_a_client_that_reads_none_of_a_large_answer_is_closed(server: RealtimeServer) -> None:
    message = b'"' + b"x" * 30_000 + b'"'
    publishes = [post(f"/publish/{PUB}/{SUB}/0/big/0?uuid=u1", message) for _ in range(100)]
    assert {status for status, _, _ in exchange(server, publishes)} == {200}
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so the server's fills
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(get(f"/v2/history/sub-key/{SUB}/channel/big?count=100"))  # ~3 MB
        time.sleep(SHORT.send_seconds * 5)  # the client reads nothing meanwhile
        sock.settimeout(WAIT_S)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(1 << 20):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    assert length > 3_000_000 and len(body) < length  # cut off, not delivered whole


# --- malformed requests -------------------------------------------------------------------

MALFORMED = {
    "bad method": b"G@T /time/0 HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad version": b"GET /time/0 HTTP/9.x\r\nHost: x\r\n\r\n",
    "header without colon": b"GET /time/0 HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n",
    "not http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "bad content length": b"POST /publish/a/b/0/c/0 HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_request_is_a_400_and_one_debug_line(
    server: RealtimeServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), contextlib.closing(RawClient(server)) as client:
        client.sock.sendall(MALFORMED[name])
        status, _, _ = client.response()
        assert _closed_by_server(client.sock, time.monotonic() + WAIT_S)
    assert status == 400
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "blocks", "asyncio"))]
    assert [r.levelno for r in records] == [logging.DEBUG], [r.getMessage() for r in records]
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()


def test_aiohttp_still_has_the_state_the_guard_reads() -> None:
    # guarded_handler.py reads two private attributes of aiohttp's protocol.
    slots = set(web.RequestHandler.__slots__)
    assert {"_current_request", "_messages"} <= slots
