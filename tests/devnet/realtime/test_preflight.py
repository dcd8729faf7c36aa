"""Browsers' CORS preflights (``OPTIONS``) on the realtime routes, over real HTTP."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_devnet.realtime.server import RealtimeServer
from blocks_network.protocol.constants import API_PATH_RPC
from tests.conftest import OPEN_KEYSET

PUB, SUB = OPEN_KEYSET.publish_key, OPEN_KEYSET.subscribe_key
TIMEOUT_S = 10.0
#: What a page's fetch of a JSON POST sends first.
PREFLIGHT = {
    "Origin": "http://page.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


def _connect(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)


def _ask(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.headers, response.read()


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        (f"/publish/{PUB}/{SUB}/0/ch/0", {"GET", "POST"}),
        (f"/v1/files/{SUB}/channels/ch/generate-upload-url", {"DELETE", "GET", "POST"}),
        (f"/v2/subscribe/{SUB}/ch/0", {"GET"}),
        ("/time/0", {"GET"}),
    ],
    ids=["publish", "files", "subscribe", "time"],
)
def test_a_preflight_allows_any_origin_the_routes_methods_and_the_asked_headers(
    realtime_server: RealtimeServer, path: str, methods: set[str]
) -> None:
    conn = _connect(realtime_server.url)
    try:
        status, headers, body = _ask(conn, "OPTIONS", path, PREFLIGHT)
    finally:
        conn.close()
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert methods <= {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert headers["Access-Control-Allow-Headers"] == "content-type"
    assert int(headers["Access-Control-Max-Age"]) > 0


def test_preflights_on_a_fast_path_connection_leave_get_and_post_answers_unchanged(
    realtime_server: RealtimeServer,
) -> None:
    """A keep-alive connection: a POST publish (the fast path), its preflight (handed to
    aiohttp), then the publish and the time probe answer as before."""
    publish = f"/publish/{PUB}/{SUB}/0/ch/0?uuid=u"
    json_post = {"Content-Type": "application/json"}
    conn = _connect(realtime_server.url)
    try:
        first = _ask(conn, "POST", publish, json_post, b'"one"')
        preflight = _ask(conn, "OPTIONS", publish, PREFLIGHT)
        second = _ask(conn, "POST", publish, json_post, b'"two"')
        time_answer = _ask(conn, "GET", "/time/0")
        no_headers_asked = _ask(conn, "OPTIONS", "/time/0")
        malformed = _ask(conn, "OPTIONS", "/time/0", {"Access-Control-Request-Headers": "x-\xe9"})
        several = _ask(conn, "OPTIONS", "/time/0", {"Access-Control-Request-Headers": "a, b-c"})
    finally:
        conn.close()
    assert preflight[0] == 204
    for status, headers, body in (first, second):
        assert status == 200 and json.loads(body)[:2] == [1, "Sent"]
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Methods" not in headers
    assert time_answer[0] == 200 and isinstance(json.loads(time_answer[2])[0], int)
    assert no_headers_asked[0] == 204
    assert no_headers_asked[1]["Access-Control-Allow-Headers"] == "Content-Type"
    assert malformed[0] == 204 and malformed[1]["Access-Control-Allow-Headers"] == "Content-Type"
    assert several[1]["Access-Control-Allow-Headers"] == "a, b-c"


def test_unknown_paths_and_the_backend_api_get_no_preflight_answer(tmp_path: Path) -> None:
    """Only realtime routes answer preflights: the backend API is for SDKs, not pages."""
    with LocalNetwork(DevnetConfig(port=0, data_dir=tmp_path)) as network:
        conn = _connect(network.url)
        try:
            backend = _ask(conn, "OPTIONS", API_PATH_RPC, PREFLIGHT)
            nowhere = _ask(conn, "OPTIONS", "/nothing/here", PREFLIGHT)
            realtime = _ask(conn, "OPTIONS", "/time/0", PREFLIGHT)
        finally:
            conn.close()
    assert backend[0] == 405 and "Access-Control-Allow-Methods" not in backend[1]
    assert nowhere[0] == 404 and "Access-Control-Allow-Methods" not in nowhere[1]
    assert realtime[0] == 204
