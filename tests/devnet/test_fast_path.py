"""The fast path in front of aiohttp answers exactly as aiohttp does, and hands over cleanly.

Differential tests: the same raw bytes go to a server with the fast path and to one without;
status, body and the headers a client reads must match (timetokens aside).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.server import RealtimeServer
from tests.devnet.raw_exchange import RawClient, exchange, get, post

OPEN = Keyset.generate("open-fast")
SECURE = Keyset.generate("secure-fast", access_enabled=True)
PUB, SUB = OPEN.publish_key, OPEN.subscribe_key
WAIT_S = 10.0


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[RealtimeServer, RealtimeServer]]:
    with (
        RealtimeServer([OPEN, SECURE], data_dir=tmp_path / "fast", fast_path=True) as fast,
        RealtimeServer([OPEN, SECURE], data_dir=tmp_path / "slow", fast_path=False) as slow,
    ):
        yield fast, slow


CASES = {
    "publish": post(f"/publish/{PUB}/{SUB}/0/room/0?uuid=u1", b'{"hi":1}'),
    "publish with meta and store=0": post(
        f"/publish/{PUB}/{SUB}/0/room/0?uuid=u1&store=0&meta=%7B%22a%22%3A1%7D", b'"x"'
    ),
    "publish without a host header": post(
        f"/publish/{PUB}/{SUB}/0/room/0?uuid=u1", b'{"hi":1}', host=None
    ),
    "bad json": post(f"/publish/{PUB}/{SUB}/0/room/0", b"{oops"),
    "not utf-8": post(f"/publish/{PUB}/{SUB}/0/room/0", b"\xff\xfe"),
    "too large": post(f"/publish/{PUB}/{SUB}/0/room/0", b'"' + b"x" * 40_000 + b'"'),
    "wrong publish key": post(f"/publish/pub-c-nope/{SUB}/0/room/0", b"1"),
    "unknown subscribe key": post(f"/publish/{PUB}/sub-c-nope/0/room/0", b"1"),
    "message in a POST path": post(f"/publish/{PUB}/{SUB}/0/room/0/%221%22", b"1"),
    "no token on a secure keyset": post(
        f"/publish/{SECURE.publish_key}/{SECURE.subscribe_key}/0/room/0?uuid=u1", b"1"
    ),
    "bad meta": post(f"/publish/{PUB}/{SUB}/0/room/0?meta=%7Bbad", b"1"),
    "bare prefix": post("/publish/", b"1"),
    "time": get("/time/0"),
    "heartbeat": get(f"/v2/presence/sub-key/{SUB}/channel/room/heartbeat?uuid=u1&heartbeat=60"),
    "set state": get(
        f"/v2/presence/sub-key/{SUB}/channel/room/uuid/u1/data?uuid=u1&state=%7B%22k%22%3A1%7D"
    ),
    "here now": get(f"/v2/presence/sub-key/{SUB}/channel/room?state=1"),
    "bad heartbeat": get(f"/v2/presence/sub-key/{SUB}/channel/room/heartbeat?heartbeat=abc"),
    "subscribe handshake": get(f"/v2/subscribe/{SUB}/room/0?tt=0&uuid=u1"),
    "subscribe bad filter": get(f"/v2/subscribe/{SUB}/room/0?tt=1&filter-expr=a%20%3D%3D"),
    "bare LF hiding a body": (
        b"POST /publish/" + PUB.encode() + b"/" + SUB.encode() + b"/0/room/0 HTTP/1.1\r\n"
        b'Host: x\r\nX-A: a\nContent-Length: 3\r\n\r\n"x"'
    ),
    "superscript content length": post(f"/publish/{PUB}/{SUB}/0/room/0", b"", "X: 1").replace(
        b"Content-Length: 0", "Content-Length: \u00b2".encode("latin-1")
    ),
    "bare CR in a header": post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", "X-A: a\rb"),
    "empty header name": post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", ": b"),
    "repeated header": post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", "X-A: 1\r\nx-a: 2"),
    "two spaces in the request line": get("/time/0").replace(b"GET /", b"GET  /", 1),
    "upper-case header names": post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", "X-UPPER: B"),
    "space in a header name": post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", "X A: b"),
    "odd character in a header name": post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", "X@A: b"),
    "NUL in a header value": post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", "X-A: a\x00b"),
    "gzip labelled body": post(
        f"/publish/{PUB}/{SUB}/0/room/0", b"not gzip at all", "Content-Encoding: gzip"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_answers_match_aiohttp(servers: tuple[RealtimeServer, RealtimeServer], name: str) -> None:
    fast, slow = servers
    assert exchange(fast, [CASES[name]]) == exchange(slow, [CASES[name]])


def test_a_pipelined_mix_is_answered_in_order_across_the_hand_over(
    servers: tuple[RealtimeServer, RealtimeServer],
) -> None:
    fast, slow = servers
    requests = [
        CASES["publish"],
        CASES["heartbeat"],
        get("/time/0"),  # not a fast route: aiohttp takes the connection from here
        CASES["publish"],
        get(f"/v2/history/sub-key/{SUB}/channel/room?count=10"),
    ]
    fast_answers = exchange(fast, requests)
    assert fast_answers == exchange(slow, requests)
    assert [status for status, _, _ in fast_answers] == [200] * 5
    assert fast_answers[-1][2].startswith('[[{"hi":1},{"hi":1}],')


def test_a_request_sent_a_byte_at_a_time_is_answered_once(
    servers: tuple[RealtimeServer, RealtimeServer],
) -> None:
    fast, _ = servers
    client = RawClient(fast)
    try:
        for byte in CASES["publish"]:
            client.sock.sendall(bytes([byte]))
        status, _, body = client.response()
        client.sock.sendall(get(f"/v2/history/sub-key/{SUB}/channel/room?count=10"))
        _, _, history = client.response()
    finally:
        client.close()
    assert status == 200 and json.loads(body)[1] == "Sent"
    assert json.loads(history)[0] == [{"hi": 1}]


def test_connection_close_is_honoured(servers: tuple[RealtimeServer, RealtimeServer]) -> None:
    fast, _ = servers
    client = RawClient(fast)
    try:
        client.sock.sendall(post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", "Connection: close"))
        status, headers, _ = client.response()
        assert status == 200 and headers.get("connection") == "close"
        assert client.closed_by_server()
    finally:
        client.close()


@pytest.mark.parametrize(
    "raw",
    [
        # chunked bodies, HTTP/1.0 and Expect go to aiohttp, which answers them
        b"POST /publish/%s/%s/0/room/0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\n1\r\n0\r\n\r\n" % (PUB.encode(), SUB.encode()),
        b"POST /publish/%s/%s/0/room/0 HTTP/1.0\r\nHost: x\r\nContent-Length: 1\r\n\r\n1"
        % (PUB.encode(), SUB.encode()),
    ],
)
def test_what_the_fast_path_does_not_read_is_handed_to_aiohttp(
    servers: tuple[RealtimeServer, RealtimeServer], raw: bytes
) -> None:
    fast, slow = servers
    assert exchange(fast, [raw])[0] == exchange(slow, [raw])[0]


def test_open_fast_connections_are_closed_when_the_server_stops(tmp_path: Path) -> None:
    server = RealtimeServer([OPEN], data_dir=tmp_path, fast_path=True).start()
    client = RawClient(server)
    try:
        client.sock.sendall(CASES["publish"])
        assert client.response()[0] == 200
        server.stop()
        assert client.closed_by_server()
    finally:
        client.close()
        server.stop()


def test_publishes_presence_calls_and_time_are_served_by_the_fast_path(
    servers: tuple[RealtimeServer, RealtimeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks_devnet import fast_path

    served: list[object] = []
    original = fast_path._run_now

    def counting(coroutine: Any) -> Any:
        served.append(coroutine)
        return original(coroutine)

    monkeypatch.setattr(fast_path, "_run_now", counting)
    fast, _ = servers
    exchange(fast, [CASES["publish"], CASES["heartbeat"], CASES["bad json"]])
    assert len(served) == 3
    exchange(fast, [CASES["time"]])
    assert len(served) == 4
    history = get(f"/v2/history/sub-key/{SUB}/channel/room")
    exchange(fast, [history, CASES["publish"]])  # handed over at the first request
    assert len(served) == 4


def _waiters(server: RealtimeServer) -> int:
    service = server.service
    assert service is not None
    return sum(len(log.waiters) for log in service.messages._logs.values())


def test_a_held_poll_is_answered_by_a_publish_and_the_connection_goes_on(
    servers: tuple[RealtimeServer, RealtimeServer],
) -> None:
    fast, _ = servers
    poller = RawClient(fast)
    try:
        poller.sock.sendall(get(f"/v2/subscribe/{SUB}/room/0?tt=0&uuid=u1"))
        cursor = json.loads(poller.response()[2])["t"]["t"]
        poller.sock.sendall(get(f"/v2/subscribe/{SUB}/room/0?tt={cursor}&uuid=u1"))
        _wait_for(lambda: _waiters(fast) == 1)
        assert exchange(fast, [CASES["publish"]])[0][0] == 200
        status, _, body = poller.response()
        assert status == 200 and [m["d"] for m in json.loads(body)["m"]] == [{"hi": 1}]
        poller.sock.sendall(CASES["heartbeat"])  # the same connection serves on
        assert poller.response()[0] == 200
    finally:
        poller.close()


def test_a_poll_whose_client_leaves_is_cancelled(
    servers: tuple[RealtimeServer, RealtimeServer],
) -> None:
    fast, _ = servers
    poller = RawClient(fast)
    poller.sock.sendall(get(f"/v2/subscribe/{SUB}/gone/0?tt=1&uuid=u2"))
    _wait_for(lambda: _waiters(fast) == 1)
    poller.close()
    _wait_for(lambda: _waiters(fast) == 0)


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("value", ["close", "keep-alive, close", "Close, TE"])
def test_a_connection_header_naming_close_closes(
    servers: tuple[RealtimeServer, RealtimeServer], value: str
) -> None:
    fast, _ = servers
    client = RawClient(fast)
    try:
        client.sock.sendall(post(f"/publish/{PUB}/{SUB}/0/room/0", b"1", f"Connection: {value}"))
        assert client.response()[1].get("connection") == "close"
        assert client.closed_by_server()
    finally:
        client.close()


def test_a_held_poll_is_answered_when_the_server_stops(tmp_path: Path) -> None:
    server = RealtimeServer([OPEN], data_dir=tmp_path, fast_path=True).start()
    client = RawClient(server)
    try:
        client.sock.sendall(get(f"/v2/subscribe/{SUB}/room/0?tt=1&uuid=u1"))
        _wait_for(lambda: _waiters(server) == 1)
        server.stop()
        status, _, body = client.response()
        assert status == 200 and json.loads(body)["m"] == []
    finally:
        client.close()
        server.stop()


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.protocol: asyncio.BaseProtocol | None = None
        self.written: list[bytes] = []
        self.closed = False

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True


class _Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("connection_made")

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")

    def data_received(self, data: bytes) -> None:
        self.calls.append(f"data:{data.split(b' ')[1].decode()}")


def test_a_hand_over_while_writing_is_paused_leaves_aiohttp_in_step() -> None:
    from aiohttp import web

    from blocks_devnet.fast_path import FastConnections

    recorder = _Recorder()
    protocol = FastConnections(web.Application(), lambda: recorder, [])()
    transport = _FakeTransport()
    protocol.connection_made(transport)
    protocol.pause_writing()  # the client stopped reading our answers
    assert not transport.reading
    protocol.data_received(get("/time/0"))
    assert transport.protocol is recorder and transport.reading  # aiohttp reads from here
    assert recorder.calls == ["connection_made", "pause_writing", "data:/time/0"]


def test_a_held_request_whose_handler_fails_is_answered_500_and_the_next_is_served() -> None:
    from aiohttp import web

    from blocks_devnet.fast_path import FastConnections, FastRoute

    release = asyncio.Event()

    async def failing(request: Any) -> web.Response:
        await release.wait()
        raise RuntimeError("boom")

    async def scenario() -> list[bytes]:
        route = FastRoute("/hold", failing, method="GET", waits=True)
        recorder = _Recorder()
        protocol = FastConnections(web.Application(), lambda: recorder, [route])()
        transport = _FakeTransport()
        protocol.connection_made(transport)
        # The second request waits behind the held one, and is answered after it.
        protocol.data_received(get("/hold") + get("/hold"))
        release.set()
        for _ in range(20):
            await asyncio.sleep(0)
            if len(transport.written) == 2:
                break
        return transport.written

    written = asyncio.run(scenario())
    assert [answer.split(b"\r\n", 1)[0] for answer in written] == [
        b"HTTP/1.1 500 Internal Server Error"
    ] * 2


def test_a_held_request_whose_wait_is_cancelled_under_it_closes_the_connection() -> None:
    from aiohttp import web

    from blocks_devnet.fast_path import FastConnections, FastRoute

    async def scenario() -> _FakeTransport:
        inner: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def held(request: Any) -> web.Response:
            await inner
            return web.Response(text="never")

        route = FastRoute("/hold", held, method="GET", waits=True)
        protocol = FastConnections(web.Application(), _Recorder, [route])()
        transport = _FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(get("/hold"))
        await asyncio.sleep(0)
        inner.cancel()  # no answer will ever come: the client must not wait for one
        for _ in range(20):
            await asyncio.sleep(0)
            if transport.closed:
                break
        return transport

    transport = asyncio.run(scenario())
    assert transport.closed and transport.written == []


def _gated_protocol(db: Any, *routes: Any) -> tuple[Any, _FakeTransport, _Recorder]:
    """A fast-path connection whose answers wait for ``db``'s commits (aiohttp: a recorder)."""
    from aiohttp import web

    from blocks_devnet import commit_gate
    from blocks_devnet.fast_path import FastConnections

    app = web.Application()
    commit_gate.install(app, db)
    recorder = _Recorder()
    protocol = FastConnections(app, lambda: recorder, list(routes))()
    transport = _FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, recorder


def _bodies(transport: _FakeTransport) -> list[bytes]:
    return [answer.rsplit(b"\r\n", 1)[1] for answer in transport.written]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(50):
        if condition():
            return
        await asyncio.sleep(0)


def _counting_routes(db: Any, on_disk: Callable[[], int]) -> tuple[Any, Any]:
    """``GET /write`` inserts a row, ``GET /read`` does not; each answers ``n:rows on disk``
    (n counts requests)."""
    from aiohttp import web

    from blocks_devnet.fast_path import FastRoute

    served = [0]

    async def write(request: Any) -> web.Response:
        db.execute("INSERT INTO t (x) VALUES (1)")
        served[0] += 1
        return web.Response(text=f"{served[0]}:{on_disk()}")

    async def read(request: Any) -> web.Response:
        served[0] += 1
        return web.Response(text=f"{served[0]}:{on_disk()}")

    return FastRoute("/write", write, method="GET"), FastRoute("/read", read, method="GET")


@pytest.fixture
def counted_db(tmp_path: Path) -> Iterator[tuple[Any, Callable[[], int]]]:
    import sqlite3

    from blocks_devnet.store.database import Database

    path = tmp_path / "db.sqlite3"
    db = Database(path)
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    def on_disk() -> int:
        conn = sqlite3.connect(path)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
        finally:
            conn.close()

    yield db, on_disk
    db.close()


def test_pipelined_requests_share_one_commit_and_are_answered_in_order(
    counted_db: tuple[Any, Callable[[], int]],
) -> None:
    db, on_disk = counted_db

    async def scenario() -> tuple[list[bytes], list[bytes], int]:
        db.batch_commits(asyncio.get_running_loop())
        protocol, transport, _ = _gated_protocol(db, *_counting_routes(db, on_disk))
        commits = db.commits
        # Sent together behind nothing: served in one turn, answered after one commit.
        protocol.data_received(get("/write") + get("/read") + get("/write"))
        before_commit = list(transport.written)
        await _until(lambda: len(transport.written) == 3)
        return before_commit, _bodies(transport), db.commits - commits

    before_commit, bodies, commits = asyncio.run(scenario())
    assert before_commit == []  # nothing said before the COMMIT
    assert bodies == [b"1:0", b"2:0", b"3:0"]  # request order
    assert commits == 1


def test_an_answer_without_writes_waits_behind_a_held_one(
    counted_db: tuple[Any, Callable[[], int]],
) -> None:
    db, on_disk = counted_db

    async def scenario() -> tuple[list[bytes], list[bytes], int]:
        db.batch_commits(asyncio.get_running_loop())
        protocol, transport, _ = _gated_protocol(db, *_counting_routes(db, on_disk))
        protocol.data_received(get("/write") + get("/read"))
        before_commit = _bodies(transport)
        await _until(lambda: len(transport.written) == 2)
        return before_commit, _bodies(transport), on_disk()

    before_commit, bodies, committed = asyncio.run(scenario())
    assert before_commit == []  # the read's answer does not overtake the held write's
    assert bodies == [b"1:0", b"2:0"]  # request order; both computed before the commit
    assert committed == 1


def test_requests_behind_a_held_answer_in_a_later_turn_get_their_own_commit(
    counted_db: tuple[Any, Callable[[], int]],
) -> None:
    db, on_disk = counted_db

    async def scenario() -> tuple[list[bytes], int]:
        db.batch_commits(asyncio.get_running_loop())
        protocol, transport, _ = _gated_protocol(db, *_counting_routes(db, on_disk))
        commits = db.commits
        protocol.data_received(get("/write"))
        await asyncio.sleep(0)  # the first batch commits
        protocol.data_received(get("/write"))
        await _until(lambda: len(transport.written) == 2)
        return _bodies(transport), db.commits - commits

    bodies, commits = asyncio.run(scenario())
    assert bodies == [b"1:0", b"2:1"]
    assert commits == 2


def test_a_rolled_back_batch_closes_the_connection_and_no_later_answer_is_written(
    counted_db: tuple[Any, Callable[[], int]],
) -> None:
    import sqlite3

    db, on_disk = counted_db

    async def scenario() -> tuple[_FakeTransport, list[bytes]]:
        db.batch_commits(asyncio.get_running_loop())
        protocol, transport, _ = _gated_protocol(db, *_counting_routes(db, on_disk))
        protocol.data_received(get("/write"))
        await _until(lambda: len(transport.written) == 1)
        db.batch_commits(asyncio.get_running_loop(), interval_s=60.0)  # hold the next batch
        protocol.data_received(get("/write") + get("/read") + get("/write"))
        await asyncio.sleep(0)
        db._settle(sqlite3.OperationalError("disk I/O error"))  # as a failed COMMIT does
        await asyncio.sleep(0)
        return transport, _bodies(transport)

    transport, bodies = asyncio.run(scenario())
    assert bodies == [b"1:0"]  # the first batch's answer only
    assert transport.closed


def test_a_request_for_aiohttp_behind_held_answers_is_handed_over_after_them(
    counted_db: tuple[Any, Callable[[], int]],
) -> None:
    db, on_disk = counted_db

    async def scenario() -> tuple[list[str], list[str], list[bytes]]:
        db.batch_commits(asyncio.get_running_loop())
        protocol, transport, recorder = _gated_protocol(db, *_counting_routes(db, on_disk))
        protocol.data_received(get("/write") + get("/write") + get("/elsewhere"))
        before_commit = list(recorder.calls)
        await _until(lambda: len(recorder.calls) == 2)
        return before_commit, recorder.calls, _bodies(transport)

    before_commit, calls, bodies = asyncio.run(scenario())
    assert before_commit == []  # aiohttp would answer before the held answers
    assert calls == ["connection_made", "data:/elsewhere"]
    assert bodies == [b"1:0", b"2:0"]


def test_an_answer_whose_batch_is_rolled_back_is_never_sent() -> None:
    import sqlite3

    from aiohttp import web

    from blocks_devnet.fast_path import FastRoute
    from blocks_devnet.store.database import Database

    db = Database(None)
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    async def write(request: Any) -> web.Response:
        db.execute("INSERT INTO t (x) VALUES (1)")
        return web.Response(text="accepted")

    async def scenario() -> _FakeTransport:
        db.batch_commits(asyncio.get_running_loop())
        protocol, transport, _ = _gated_protocol(db, FastRoute("/write", write, method="GET"))
        protocol.data_received(get("/write"))
        db._settle(sqlite3.OperationalError("disk I/O error"))  # as a failed COMMIT does
        return transport

    transport = asyncio.run(scenario())
    db.close()
    assert transport.closed and transport.written == []


def test_a_shared_poll_as_long_as_the_sdk_sends_is_held_by_the_fast_path(
    servers: tuple[RealtimeServer, RealtimeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks_devnet import fast_path
    from blocks_network.transport.poll_groups import MAX_TARGET_BYTES

    handed_over: list[object] = []
    original = fast_path.FastProtocol._hand_over

    def recording(self: fast_path.FastProtocol) -> None:
        handed_over.append(self)
        original(self)

    monkeypatch.setattr(fast_path.FastProtocol, "_hand_over", recording)
    fast, _ = servers
    names: list[str] = []
    while len(",".join(names)) < MAX_TARGET_BYTES - 200:
        names.append(f"u.org_{len(names):06d}.t_{len(names):024x}")
    target = f"/v2/subscribe/{SUB}/{','.join(names)}/0?tt=1&uuid=u1"
    poller = RawClient(fast)
    try:
        poller.sock.sendall(get(target))
        _wait_for(lambda: _waiters(fast) >= 1)
        assert exchange(fast, [post(f"/publish/{PUB}/{SUB}/0/{names[-1]}/0?uuid=u1", b"1")])
        status, _, body = poller.response()
        assert status == 200 and [m["c"] for m in json.loads(body)["m"]] == [names[-1]]
        assert handed_over == []  # served and held without aiohttp
    finally:
        poller.close()
