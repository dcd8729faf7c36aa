"""Long multi-channel subscribe URLs (sessions sharing a poll send up to ~30 KB of them)."""

from __future__ import annotations

import http.client
import json

from blocks_devnet.realtime.http import MAX_CHANNELS_PER_REQUEST
from blocks_devnet.realtime.server import RealtimeServer
from blocks_network.transport.poll_groups import MAX_POLL_CHANNELS, MAX_TARGET_BYTES
from tests.conftest import OPEN_KEYSET


def _get(server: RealtimeServer, target: str) -> tuple[int, bytes]:
    host, port = server.origin.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _subscribe_target(channels: int) -> str:
    names = ",".join(f"u.org_0123456789abcdef.t_{i:032d}" for i in range(channels))
    return f"/v2/subscribe/{OPEN_KEYSET.subscribe_key}/{names}/0?tt=0&uuid=reader"


def test_a_subscribe_as_long_as_a_shared_poll_may_be_is_answered(
    realtime_server: RealtimeServer,
) -> None:
    channels = 1
    while len(_subscribe_target(channels + 1)) <= MAX_TARGET_BYTES:
        channels += 1
    assert channels <= MAX_POLL_CHANNELS <= MAX_CHANNELS_PER_REQUEST
    status, body = _get(realtime_server, _subscribe_target(channels))
    assert status == 200, body[:200]
    assert json.loads(body)["m"] == []


def test_a_request_line_over_the_servers_limit_is_refused_with_a_4xx(
    realtime_server: RealtimeServer,
) -> None:
    status, _ = _get(realtime_server, _subscribe_target(3000))  # some 180 KB
    assert 400 <= status < 500
    # The server is still there for the next request.
    assert _get(realtime_server, "/time/0")[0] == 200
