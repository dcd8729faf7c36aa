"""Every request of a task's round trip goes through ``Transport.handle_request`` (or the
pipelining of ``HttpClient.start``, over the same pool), here over IPv6 loopback."""

from __future__ import annotations

import ast
import socket
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_network.testing import AgentRunner, BlocksTestNetwork, artifact_texts, send_and_wait
from blocks_network.transport import base
from blocks_network.transport.connections import HttpResponse, PlainConnection
from blocks_network.types import StartTaskMessage, TaskContext

TRANSPORT_DIR = Path(base.__file__).parent
#: The modules allowed to handle connections themselves: the wire code, the pool, the
#: transport, and HttpClient's pipelining (checkout/checkin through the pool).
# The subscription loops send their polls themselves (a selector waits on many at once),
# over connections taken from the same pool (PollConnections.take -> ConnectionPool.checkout).
CONNECTION_MODULES = {
    "connections.py",
    "pool.py",
    "base.py",
    "http_client.py",
    "subscription.py",
    "poll_loop.py",
}


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def v6_network(tmp_path: Path) -> Iterator[BlocksTestNetwork]:
    if not _ipv6_loopback():
        pytest.skip("IPv6 loopback (::1) cannot be bound on this machine")
    with BlocksTestNetwork.start(tmp_path / "v6", host="::1") as network:
        yield network


def upper(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    return {"artifacts": [{"data": task.request_parts[0]["text"].upper()}]}


def test_a_round_trip_over_ipv6_sends_every_request_through_the_transport(
    v6_network: BlocksTestNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert v6_network.url.startswith("http://[::1]:")
    kinds: Counter[str] = Counter()
    hosts: set[str] = set()
    outside: list[str] = []
    inside = threading.local()
    handle = base.Transport.handle_request
    send = PlainConnection.request

    def counting(self: base.Transport, request: base.Request) -> HttpResponse:
        inside.depth = getattr(inside, "depth", 0) + 1
        try:
            return handle(self, request)
        finally:
            inside.depth -= 1

    def watched(self: PlainConnection, method: str, target: str, *args: Any, **kw: Any) -> None:
        if not getattr(inside, "depth", 0):
            outside.append(sys._getframe(1).f_code.co_qualname)
        path = target.split("?", 1)[0]
        kinds["poll" if path.startswith("/v2/subscribe") else path.split("/")[1]] += 1
        hosts.add(self.host)
        send(self, method, target, *args, **kw)

    monkeypatch.setattr(base.Transport, "handle_request", counting)
    monkeypatch.setattr(PlainConnection, "request", watched)
    runner = AgentRunner(v6_network)
    client = v6_network.client()
    try:
        runner.start(upper, agent_name="v6_upper")
        session = send_and_wait(client, "v6_upper", "over ipv6", timeout=30)
        assert artifact_texts(session) == ["OVER IPV6"]
    finally:
        client.destroy()
        runner.stop_all()
    assert hosts == {"::1"}
    # Backend and token calls, publishes (task events) and subscribe polls.
    assert kinds["api"] and kinds["publish"] and kinds["poll"], kinds
    assert sum(kinds.values()) - len(outside) > len(outside)  # most through handle_request
    # Pipelined requests and subscribe polls go out on connections of the same pool.
    assert set(outside) <= {"HttpClient.start", "PendingResponse.pipeline", "send_poll"}, outside


def test_only_the_transport_modules_open_connections() -> None:
    package = TRANSPORT_DIR.parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.parent == TRANSPORT_DIR and path.name in CONNECTION_MODULES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.ImportFrom) and node.module
                else []
            )
            if "PlainConnection" in names:
                offenders.append(str(path.relative_to(package)))
    assert offenders == []
