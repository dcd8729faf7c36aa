"""Garbage to publish and subscribe: PubNub's error statuses, JSON bodies, nothing stored."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET

PUB, SUB = OPEN_KEYSET.publish_key, OPEN_KEYSET.subscribe_key


def fetch(
    server: RealtimeServer, path: str, *, method: str = "GET", body: bytes | None = None
) -> tuple[int, object]:
    request = urllib.request.Request(server.url + path, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


BAD_REQUESTS = [
    ("GET", f"/publish/{PUB}/{SUB}/0/ch/0/%7Bnot-json", None, 400),
    ("GET", f"/publish/{PUB}/{SUB}/0/ch/0/%22x%22?meta=%7Bbad", None, 400),
    ("GET", f"/publish/{PUB}/{SUB}/0/ch/0/%22x%22?meta=%5B1%5D", None, 400),
    ("GET", f"/publish/{PUB}/{SUB}/0/ch/0/%22x%22?ttl=abc", None, 400),
    ("GET", f"/publish/{PUB}/{SUB}/0/ch/0/%22x%22?custom_message_type=a", None, 400),
    ("GET", f"/publish/pub-c-wrong/{SUB}/0/ch/0/%22x%22", None, 400),
    ("GET", f"/publish/{PUB}/sub-c-wrong/0/ch/0/%22x%22", None, 400),
    ("GET", f"/publish/{PUB}/{SUB}/0/ch", None, 400),
    ("GET", f"/publish/{PUB}/{SUB}/0//0/%22x%22", None, 400),
    ("POST", f"/publish/{PUB}/{SUB}/0/ch/0", b"{oops", 400),
    ("POST", f"/publish/{PUB}/{SUB}/0/ch/0", b"\xff\xfe", 400),
    ("POST", f"/publish/{PUB}/{SUB}/0/ch/0", b'"' + b"x" * 40000 + b'"', 413),
    ("GET", f"/signal/{PUB}/{SUB}/0/ch/0/%7B", None, 400),
    ("GET", f"/v2/subscribe/{SUB}/,/0?tt=0", None, 400),
    ("GET", f"/v2/subscribe/{SUB}/ch/0?tt=abc", None, 400),
    ("GET", f"/v2/subscribe/{SUB}/ch/0?tt=-5", None, 400),
    ("GET", f"/v2/subscribe/{SUB}/ch/0?tt=1&filter-expr=meta.a%20%3D%3D", None, 400),
    ("GET", f"/v2/subscribe/{SUB}/ch/0?tt=0&heartbeat=abc", None, 400),
    ("GET", f"/v2/subscribe/{SUB}/ch/0?tt=0&state=%7Bbad", None, 400),
    ("GET", "/v2/subscribe/sub-c-wrong/ch/0?tt=0", None, 400),
    ("GET", "/v2/subscribe", None, 404),
    ("GET", "/nothing/here", None, 404),
    ("DELETE", "/time/0", None, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
def test_bad_request_gets_pubnub_error_and_server_keeps_serving(
    realtime_server: RealtimeServer, method: str, path: str, body: bytes | None, status: int
) -> None:
    got_status, got_body = fetch(realtime_server, path, method=method, body=body)
    assert got_status == status
    assert isinstance(got_body, (dict, list))
    if isinstance(got_body, list):  # publish errors: [0, "<reason>", "<tt>"]
        assert got_body[0] == 0 and isinstance(got_body[1], str)
    ok_status, _ = fetch(realtime_server, f"/publish/{PUB}/{SUB}/0/ch/0/%22ok%22")
    assert ok_status == 200


def test_rejected_publishes_store_nothing(realtime_server: RealtimeServer) -> None:
    for method, path, body, _status in BAD_REQUESTS:
        if "/publish/" in path or "/signal/" in path:
            fetch(realtime_server, path, method=method, body=body)
    status, history = fetch(realtime_server, f"/v2/history/sub-key/{SUB}/channel/ch?count=100")
    assert status == 200
    assert history == [[], 0, 0]
