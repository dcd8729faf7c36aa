"""Garbage to publish and subscribe: PubNub's error statuses, JSON bodies, nothing stored."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import zlib

import pytest

from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET, SECURE_KEYSET, PubNubFactory

PUB, SUB = OPEN_KEYSET.publish_key, OPEN_KEYSET.subscribe_key
SECURE_SUB = SECURE_KEYSET.subscribe_key


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
    ("GET", f"/v2/subscribe/{SUB}/{','.join(f'c{i}' for i in range(2001))}/0?tt=0", None, 400),
    ("GET", f"/v2/presence/sub-key/{SUB}/channel/{','.join('c' * 2001)}/leave", None, 400),
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


def post_publish(
    server: RealtimeServer, body: bytes, *, encoding: str | None = None, channel: str = "ch"
) -> tuple[int, object]:
    request = urllib.request.Request(
        f"{server.url}/publish/{PUB}/{SUB}/0/{channel}/0?uuid=u", data=body, method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if encoding is not None:
        request.add_header("Content-Encoding", encoding)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def stored_messages(server: RealtimeServer, channel: str = "ch") -> list[object]:
    status, history = fetch(server, f"/v2/history/sub-key/{SUB}/channel/{channel}?count=100")
    assert status == 200 and isinstance(history, list)
    return list(history[0])


def test_official_client_compressed_publish_is_stored(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory
) -> None:
    """should_compress sends zlib labelled as gzip: the server must read it, once."""
    client = pubnub_factory("compressor")
    client.config.should_compress = True
    envelope = client.publish().channel("ch").message({"z": "zipped"}).use_post(True).sync()
    assert envelope.status.is_error() is False
    assert stored_messages(realtime_server) == [{"z": "zipped"}]


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (gzip.compress(b'{"g":1}'), "gzip"),
        (zlib.compress(b'{"g":1}'), "gzip"),
        (zlib.compress(b'{"g":1}'), "deflate"),
    ],
    ids=["gzip", "zlib-labelled-gzip", "zlib-labelled-deflate"],
)
def test_compressed_bodies_are_decoded_exactly_once(
    realtime_server: RealtimeServer, body: bytes, encoding: str
) -> None:
    assert post_publish(realtime_server, body, encoding=encoding)[0] == 200
    assert stored_messages(realtime_server) == [{"g": 1}]


@pytest.mark.parametrize(
    ("body", "encoding", "status"),
    [
        (b"not compressed", "gzip", 400),
        (zlib.compress(b'{"g":1}')[:-6], "gzip", 400),  # truncated stream
        (zlib.compress(b"[" + b"0," * 1_000_000 + b"0]", 9), "gzip", 413),  # a small bomb
        (b'"\xff"', None, 400),  # not UTF-8: refused, not stored as U+FFFD
        (b'{"a": NaN}', None, 400),
        (b'"\\ud800"', None, 400),
        (b"[" * 10_000, None, 400),
        (zlib.compress(b'{"g":1}'), "br", 400),  # an encoding we do not read
    ],
    ids=["garbage", "truncated", "bomb", "not-utf8", "nan", "surrogate", "deep", "brotli"],
)
def test_bad_bodies_get_publish_errors_and_store_nothing(
    realtime_server: RealtimeServer, body: bytes, encoding: str | None, status: int
) -> None:
    got_status, got_body = post_publish(realtime_server, body, encoding=encoding)
    assert got_status == status
    assert isinstance(got_body, list) and got_body[0] == 0
    assert stored_messages(realtime_server) == []


def test_path_segments_must_encode_utf8(realtime_server: RealtimeServer) -> None:
    """``%ff`` and ``%fe`` would both decode to U+FFFD: one channel under two names."""
    for channel in ("%ff", "%fe"):
        status, body = fetch(realtime_server, f"/publish/{PUB}/{SUB}/0/{channel}/0/%22x%22")
        assert status == 400 and isinstance(body, dict)
    status, _ = fetch(realtime_server, f"/publish/{PUB}/{SUB}/0/ch/0/%22%ff%22")
    assert status == 400
    assert stored_messages(realtime_server) == []


@pytest.mark.parametrize(
    "path",
    [
        f"/signal/{PUB}/{SUB}/0/ch/0/%22s%22",
        f"/v2/subscribe/{SUB}/ch/0?tt=0&uuid=head",
        f"/v2/presence/sub-key/{SUB}/channel/ch/heartbeat?uuid=head",
    ],
    ids=["signal", "subscribe", "heartbeat"],
)
def test_head_changes_nothing(realtime_server: RealtimeServer, path: str) -> None:
    request = urllib.request.Request(realtime_server.url + path, method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    status, here_now = fetch(realtime_server, f"/v2/presence/sub-key/{SUB}/channel/ch")
    assert status == 200 and isinstance(here_now, dict) and here_now["occupancy"] == 0


def test_the_largest_channel_list_allowed_is_served(realtime_server: RealtimeServer) -> None:
    channels = ",".join(f"c{i}" for i in range(2000))
    status, body = fetch(realtime_server, f"/v2/subscribe/{SUB}/{channels}/0?tt=0")
    assert status == 200 and isinstance(body, dict) and body["m"] == []


def test_form_encoded_meta_and_state_decode_plus_as_space(
    realtime_server: RealtimeServer,
) -> None:
    # Older clients form-encode JSON parameters ('+' for a space); the real service decodes them.
    meta = "%7B%22k%22:+%22a+b%2Bc%22%7D"  # {"k": "a b+c"}
    status, _ = fetch(realtime_server, f"/publish/{PUB}/{SUB}/0/plus/0/%22x%22?meta={meta}&uuid=u")
    assert status == 200
    status, fetched = fetch(
        realtime_server, f"/v3/history/sub-key/{SUB}/channel/plus?include_meta=true"
    )
    assert status == 200 and isinstance(fetched, dict)
    assert fetched["channels"]["plus"][0]["meta"] == {"k": "a b+c"}

    state = "%7B%22mood%22:+%22very+good%22%7D"
    path = f"/v2/presence/sub-key/{SUB}/channel/plus/uuid/u/data?state={state}&uuid=u"
    status, _ = fetch(realtime_server, path)
    assert status == 200
    status, got = fetch(realtime_server, f"/v2/presence/sub-key/{SUB}/channel/plus/uuid/u?uuid=u")
    assert status == 200 and isinstance(got, dict)
    assert got["payload"] == {"mood": "very good"}


def test_invalid_publish_key_is_the_real_array(realtime_server: RealtimeServer) -> None:
    status, body = fetch(realtime_server, f"/publish/pub-c-wrong/{SUB}/0/ch/0/%22x%22")
    assert status == 400
    assert isinstance(body, list) and body[:2] == [0, "Invalid Key"] and body[2].isdigit()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/time/0", None),
        ("GET", f"/publish/{PUB}/{SUB}/0/cors/0/%22x%22", None),
        ("POST", f"/publish/{PUB}/{SUB}/0/cors/0", b'"x"'),  # the fast path's answer
        ("POST", f"/publish/{PUB}/{SUB}/0/cors/0", b"{oops"),  # the fast path's 400
        ("GET", f"/v2/subscribe/{SUB}/cors/0?tt=0&uuid=u", None),
        ("GET", f"/v2/presence/sub-key/{SUB}/channel/cors?uuid=u", None),
        ("GET", f"/v3/history/sub-key/{SUB}/channel/cors", None),
        ("GET", f"/v2/subscribe/{SUB}/cors/0?tt=abc", None),
        ("GET", f"/v2/subscribe/{SECURE_SUB}/cors/0?tt=0&uuid=u", None),  # 403
        ("GET", f"/v1/files/{SUB}/channels/cors/files/nope/x.txt?uuid=u", None),  # 404
        ("DELETE", "/time/0", None),  # 405
        ("GET", "/nothing/here", None),
    ],
)
def test_every_realtime_answer_allows_any_origin(
    realtime_server: RealtimeServer, method: str, path: str, body: bytes | None
) -> None:
    # The real service's recorded answers, errors included, all carry the header (e.g.
    # pubnub/python tests/integrational/fixtures/native_sync/publish/invalid_key.yaml).
    request = urllib.request.Request(realtime_server.url + path, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        headers = exc.headers
    assert headers["Access-Control-Allow-Origin"] == "*"
