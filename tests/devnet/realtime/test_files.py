"""The Files API with the official client (send, event, download, list, delete) and raw HTTP."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from pubnub.enums import PNStatusCategory
from pubnub.exceptions import PubNubException
from pubnub.models.subscription import PNEventEmitter
from pubnub.pubnub import PubNub

from blocks_devnet.realtime.access_tokens import DELETE, READ, WRITE, TokenGrant, issue_token
from blocks_devnet.realtime.file_store import PendingUpload, download_signature
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET, SECURE_KEYSET, PubNubFactory
from tests.support.pubnub_clients import RecordingListener, make_config, next_item

SMALL_LIMIT = 4096
SMALL_KEYSET = Keyset.generate("small", max_file_bytes=SMALL_LIMIT)
BOUNDARY = "----BlocksUploadBoundary"


# --- helpers ---------------------------------------------------------------------------------


def raw(
    server: RealtimeServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request without redirects; returns (status, headers, body)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def assert_still_serving(server: RealtimeServer) -> None:
    status, _, body = raw(server, "GET", "/time/0")
    assert status == 200 and isinstance(json.loads(body)[0], int)


def multipart(
    fields: list[tuple[str, str]], file_name: str, data: bytes, content_type: str
) -> bytes:
    """A body shaped like the Blocks SDK's presigned upload (protocol.md §5.6)."""
    out = b""
    for key, value in fields:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
    out += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return out + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def post_upload(server: RealtimeServer, upload: PendingUpload, data: bytes) -> tuple[int, bytes]:
    fields = [(f["key"], f["value"]) for f in upload.form_fields]
    body = multipart(fields, upload.name, data, upload.content_type)
    status, _, answer = raw(
        server,
        "POST",
        upload.path,
        body,
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    return status, answer


def on_loop(server: RealtimeServer, fn: Any) -> Any:
    """Call ``fn(file_store)`` on the server's loop (the store belongs to that thread)."""
    return server.call(lambda: fn(server.service.file_store))  # type: ignore[union-attr]


def send(client: PubNub, channel: str, name: str, data: bytes, **kw: Any) -> Any:
    builder = client.send_file().channel(channel).file_name(name).file_object(data)
    if "message" in kw:
        builder = builder.message(kw["message"])
    if "store" in kw:
        builder = builder.should_store(kw["store"])
    return builder.sync().result


def token(channels: dict[str, int], minutes: int = 10) -> str:
    grant = TokenGrant(issued_at=int(time.time()), ttl_minutes=minutes, channels=channels)
    return issue_token(grant, SECURE_KEYSET.secret_key)


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[RealtimeServer]:
    with RealtimeServer([SMALL_KEYSET], data_dir=tmp_path / "small", long_poll_seconds=5) as server:
        yield server


# --- the official client -------------------------------------------------------------------


def test_file_event_reaches_subscriber_and_delivery_continues(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SDK bug (pubnub-wire.md §10.1): the registry calls file_message() on subscription
    # objects that lack it, killing the event thread. The client-side workaround:
    monkeypatch.setattr(PNEventEmitter, "file_message", lambda self, event: None, raising=False)
    alice = pubnub_factory("alice")
    listener = RecordingListener()
    alice.add_listener(listener)
    alice.subscribe().channels(["room"]).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)

    bob = pubnub_factory("bob")
    sent = send(bob, "room", "hello.txt", b"hello file", message={"note": "hi"})
    assert sent.timestamp

    event = next_item(listener.files)
    assert (event.file_id, event.file_name) == (sent.file_id, "hello.txt")
    assert event.message == {"note": "hi"}
    assert event.publisher == "bob"
    assert event.timetoken == int(sent.timestamp)
    prefix = (
        f"http://{realtime_server.origin}/v1/files/{OPEN_KEYSET.subscribe_key}/channels/room/files/"
    )
    assert event.file_url.startswith(f"{prefix}{sent.file_id}/hello.txt?")
    # The locally built URL 307s to a signed link that plain HTTP clients can follow.
    with urllib.request.urlopen(event.file_url, timeout=10) as response:
        assert response.read() == b"hello file"
        assert response.headers["Content-Type"].startswith("text/plain")

    bob.publish().channel("room").message("after the file").sync()
    assert next_item(listener.messages).message == "after the file"


def test_download_file_returns_exact_binary_bytes(pubnub_factory: PubNubFactory) -> None:
    data = bytes(range(256)) * 4096 + os.urandom(64)  # 1 MiB of every byte value, and then some
    client = pubnub_factory("alice")
    sent = send(client, "bin/ary", "blob.bin", data)
    got = (
        client.download_file().channel("bin/ary").file_id(sent.file_id).file_name("blob.bin").sync()
    )
    assert got.result.data == data


def test_get_file_url_is_a_307_to_a_signed_expiring_link(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    client = pubnub_factory("alice")
    sent = send(client, "room", "a b ü.txt", b"x")
    url = client.get_file_url().channel("room").file_id(sent.file_id).file_name("a b ü.txt").sync()
    location = urlsplit(url.result.file_url)
    assert f"{location.scheme}://{location.netloc}" == realtime_server.url
    query = parse_qs(location.query)
    assert int(query["exp"][0]) > time.time() + 60
    assert len(query["sig"][0]) == 64

    path = f"/v1/files/{OPEN_KEYSET.subscribe_key}/channels/room/files/{sent.file_id}/{quote('a b ü.txt')}"
    status, headers, _ = raw(realtime_server, "GET", path + "?uuid=x")
    assert status == 307 and headers["Location"].startswith(realtime_server.url)
    # The real service's 307 (pubnub/python tests/integrational/fixtures/native_sync/
    # file_upload/download_file.yaml): cacheable until shortly before the link expires.
    assert headers["Cache-Control"] == "public, max-age=3540, immutable"
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_list_files_pages_with_limit_and_next(pubnub_factory: PubNubFactory) -> None:
    client = pubnub_factory("alice")
    ids = [send(client, "docs", f"f{i}.txt", b"%d" % i).file_id for i in range(3)]
    send(client, "other", "elsewhere.txt", b"-")

    first = client.list_files().channel("docs").limit(2).sync().result
    assert first.count == 2 and first.next
    second = client.list_files().channel("docs").limit(2).next(first.next).sync().result
    assert second.count == 1 and second.next is None
    listed = first.data + second.data
    assert sorted(f["id"] for f in listed) == sorted(ids)
    assert {f["name"] for f in listed} == {"f0.txt", "f1.txt", "f2.txt"}
    assert all(f["size"] == 1 and f["created"].endswith("Z") for f in listed)


def test_delete_file_removes_it(pubnub_factory: PubNubFactory) -> None:
    client = pubnub_factory("alice")
    sent = send(client, "room", "gone.txt", b"bye")
    result = client.delete_file().channel("room").file_id(sent.file_id).file_name("gone.txt").sync()
    assert result.result.status == 200
    assert client.list_files().channel("room").sync().result.data == []
    with pytest.raises(PubNubException) as info:
        client.download_file().channel("room").file_id(sent.file_id).file_name("gone.txt").sync()
    assert info.value.get_status_code() == 404
    with pytest.raises(PubNubException) as again:
        client.delete_file().channel("room").file_id(sent.file_id).file_name("gone.txt").sync()
    assert again.value.get_status_code() == 404


def test_download_needs_the_matching_file_name(pubnub_factory: PubNubFactory) -> None:
    client = pubnub_factory("alice")
    sent = send(client, "room", "right.txt", b"r")
    with pytest.raises(PubNubException) as info:
        client.download_file().channel("room").file_id(sent.file_id).file_name("wrong.txt").sync()
    assert info.value.get_status_code() == 404


def test_upload_over_the_keyset_limit_is_rejected_and_nothing_stored(
    small_server: RealtimeServer,
) -> None:
    client = PubNub(make_config(small_server.origin, SMALL_KEYSET, "alice"))
    try:
        assert send(client, "room", "fits.bin", b"x" * SMALL_LIMIT).file_id
        with pytest.raises(PubNubException) as info:
            send(client, "room", "big.bin", b"x" * (SMALL_LIMIT + 1))
        assert info.value.get_status_code() == 400
        assert "EntityTooLarge" in str(info.value)
        names = [f["name"] for f in client.list_files().channel("room").sync().result.data]
        assert names == ["fits.bin"]
    finally:
        client.stop()


def test_publish_file_honours_store(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    client = pubnub_factory("alice")
    kept = send(client, "room", "kept.txt", b"k", store=True)
    fleeting = send(client, "room", "fleeting.txt", b"f")  # the client sends store=0 by default
    rows = realtime_server.call(
        lambda: {
            row["timetoken"]: (row["stored"], row["message_type"])
            for row in realtime_server.service.db.query("SELECT * FROM messages")  # type: ignore[union-attr]
        }
    )
    assert rows[int(kept.timestamp)] == (1, 4)  # type: ignore[index]
    assert rows[int(fleeting.timestamp)] == (0, 4)  # type: ignore[index]


def test_files_survive_a_restart(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    with RealtimeServer([OPEN_KEYSET], data_dir=tmp_path / "d") as first:
        client = PubNub(make_config(first.origin, OPEN_KEYSET, "alice"))
        sent = send(client, "room", "keep.bin", data)
        client.stop()
    with RealtimeServer([OPEN_KEYSET], data_dir=tmp_path / "d") as second:
        client = PubNub(make_config(second.origin, OPEN_KEYSET, "alice"))
        try:
            got = (
                client.download_file()
                .channel("room")
                .file_id(sent.file_id)
                .file_name("keep.bin")
                .sync()
            )
            assert got.result.data == data
            assert [f["id"] for f in client.list_files().channel("room").sync().result.data] == [
                sent.file_id
            ]
        finally:
            client.stop()


# --- access ----------------------------------------------------------------------------------


def test_secure_keyset_checks_write_read_and_delete(pubnub_factory: PubNubFactory) -> None:
    writer = pubnub_factory("writer", SECURE_KEYSET)
    with pytest.raises(PubNubException) as no_token:
        send(writer, "vault", "a.txt", b"a")
    assert no_token.value.get_status_code() == 403

    writer.set_token(token({"vault": WRITE}))
    sent = send(writer, "vault", "a.txt", b"secret")
    with pytest.raises(PubNubException) as no_read:
        writer.list_files().channel("vault").sync()
    assert no_read.value.get_status_code() == 403

    reader = pubnub_factory("reader", SECURE_KEYSET)
    reader.set_token(token({"vault": READ}))
    got = reader.download_file().channel("vault").file_id(sent.file_id).file_name("a.txt").sync()
    assert got.result.data == b"secret"
    with pytest.raises(PubNubException) as no_delete:
        reader.delete_file().channel("vault").file_id(sent.file_id).file_name("a.txt").sync()
    assert no_delete.value.get_status_code() == 403

    reader.set_token(token({"vault": READ | DELETE}))
    reader.delete_file().channel("vault").file_id(sent.file_id).file_name("a.txt").sync()
    assert reader.list_files().channel("vault").sync().result.data == []


def test_secret_key_client_is_privileged(pubnub_factory: PubNubFactory) -> None:
    server = pubnub_factory("server", SECURE_KEYSET, secret=True)
    sent = send(server, "vault", "signed.txt", b"s", message="m")
    got = (
        server.download_file().channel("vault").file_id(sent.file_id).file_name("signed.txt").sync()
    )
    assert got.result.data == b"s"
    server.delete_file().channel("vault").file_id(sent.file_id).file_name("signed.txt").sync()


def _signed_location(server: RealtimeServer, file_id: str, name: str) -> str:
    path = f"/v1/files/{OPEN_KEYSET.subscribe_key}/channels/room/files/{file_id}/{name}?uuid=u"
    status, headers, _ = raw(server, "GET", path)
    assert status == 307
    location = urlsplit(headers["Location"])
    return f"{location.path}?{location.query}"


def test_download_with_tampered_or_expired_signature_is_403(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    sent = send(pubnub_factory("alice"), "room", "t.txt", b"t")
    good = _signed_location(realtime_server, sent.file_id, "t.txt")
    assert raw(realtime_server, "GET", good)[0] == 200

    path, query = good.split("?")
    params = parse_qs(query)
    exp, sig = params["exp"][0], params["sig"][0]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    past = int(time.time()) - 1
    past_sig = download_signature(
        OPEN_KEYSET.secret_key, OPEN_KEYSET.subscribe_key, "room", sent.file_id, "t.txt", past
    )
    other_file = path.replace(sent.file_id, "0" * len(sent.file_id))
    for url in (
        f"{path}?exp={exp}&sig={flipped}",  # tampered signature
        f"{path}?exp={int(exp) + 1}&sig={sig}",  # extended expiry
        f"{path}?exp={past}&sig={past_sig}",  # correctly signed but expired
        f"{other_file}?exp={exp}&sig={sig}",  # another file's link
        f"{path}?exp={exp}",  # no signature
        path,
    ):
        status, _, body = raw(realtime_server, "GET", url)
        assert status == 403, url
        assert json.loads(body)["status"] == 403


# --- names -----------------------------------------------------------------------------------

BAD_NAMES = [
    "../etc/passwd",
    "a/b.txt",
    "a\\b.txt",
    "..",
    "x..y",
    "nul\x00.txt",
    "bell\x07",
    "tab\t",
    "a" * 256,
    "é" * 128,
    "",
    "q?.txt",
    "h#.txt",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_path_trick_names_are_rejected(realtime_server: RealtimeServer, name: str) -> None:
    path = f"/v1/files/{OPEN_KEYSET.subscribe_key}/channels/room/generate-upload-url"
    status, _, body = raw(realtime_server, "POST", path, json.dumps({"name": name}).encode())
    assert status == 400
    assert "file name" in json.loads(body)["message"]


def test_path_trick_name_is_rejected_through_the_client(pubnub_factory: PubNubFactory) -> None:
    with pytest.raises(PubNubException) as info:
        send(pubnub_factory("alice"), "room", "../up.txt", b"x")
    assert info.value.get_status_code() == 400


# --- the Blocks backend's presigned uploads ------------------------------------------------


def test_presigned_upload_lands_in_the_same_store(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    meta = {"role": "provider-output", "taskId": "t-1"}
    upload: PendingUpload = on_loop(
        realtime_server,
        lambda store: store.create_upload(
            OPEN_KEYSET.subscribe_key, "u.org.t-1", "report.pdf", max_bytes=1000, metadata=meta
        ),
    )
    data = b"%PDF-1.7 binary\x00\xff"
    status, body = post_upload(realtime_server, upload, data)
    assert (status, body) == (204, b"")

    done = on_loop(realtime_server, lambda store: store.get_upload(upload.upload_id))
    assert done.completed and done.metadata == meta and done.file_id == upload.file_id
    client = pubnub_factory("consumer")
    got = (
        client.download_file()
        .channel("u.org.t-1")
        .file_id(upload.file_id)
        .file_name("report.pdf")
        .sync()
    )
    assert got.result.data == data

    again_status, again = post_upload(realtime_server, upload, b"other")
    assert again_status == 409 and "already completed" in json.loads(again)["message"]


def test_presigned_upload_over_its_limit_stores_nothing(realtime_server: RealtimeServer) -> None:
    upload: PendingUpload = on_loop(
        realtime_server,
        lambda store: store.create_upload(OPEN_KEYSET.subscribe_key, "ch", "x.bin", max_bytes=10),
    )
    status, body = post_upload(realtime_server, upload, b"x" * 11)
    assert status == 400 and "EntityTooLarge" in json.loads(body)["message"]
    assert (
        on_loop(realtime_server, lambda s: s.list_files(OPEN_KEYSET.subscribe_key, "ch").files)
        == []
    )
    # Far over the limit: refused from Content-Length, before the body is read.
    status, body = post_upload(realtime_server, upload, b"x" * 400_000)
    assert status == 400 and "EntityTooLarge" in json.loads(body)["message"]
    assert post_upload(realtime_server, upload, b"x" * 10)[0] == 204  # the upload is still usable


def test_presigned_upload_cut_at_a_boundary_inside_the_file_is_refused(
    realtime_server: RealtimeServer,
) -> None:
    # A file holding the body's own closing boundary parses as a shorter, complete file;
    # only the size the uploader declared tells them apart.
    data = b"head" + f"\r\n--{BOUNDARY}--\r\n".encode() + b"tail" * 100
    upload: PendingUpload = on_loop(
        realtime_server,
        lambda store: store.create_upload(
            OPEN_KEYSET.subscribe_key, "ch", "cut.bin", max_bytes=1000, expected_bytes=len(data)
        ),
    )
    status, body = post_upload(realtime_server, upload, data)
    assert status == 400
    assert json.loads(body)["message"].startswith(
        f"IncompleteBody: received 4 bytes but this upload declared {len(data)}"
    )
    assert (
        on_loop(realtime_server, lambda s: s.list_files(OPEN_KEYSET.subscribe_key, "ch").files)
        == []
    )


# --- garbage ---------------------------------------------------------------------------------

SUB, PUB = OPEN_KEYSET.subscribe_key, OPEN_KEYSET.publish_key
MP = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
GARBAGE: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
    ("POST", f"/v1/files/{SUB}/channels/room/generate-upload-url", b"not json", {}, 400),
    ("POST", f"/v1/files/{SUB}/channels/room/generate-upload-url", b"[1,2]", {}, 400),
    ("POST", f"/v1/files/{SUB}/channels/room/generate-upload-url", b'{"name": 5}', {}, 400),
    ("POST", f"/v1/files/{SUB}/channels/room/generate-upload-url", b"\xff\xfe", {}, 400),
    ("POST", f"/v1/files/{SUB}/channels/room/generate-upload-url", b"{}" + b" " * 70_000, {}, 413),
    ("POST", "/v1/files/sub-c-nope/channels/room/generate-upload-url", b'{"name":"a"}', {}, 400),
    ("GET", f"/v1/files/{SUB}/channels/room/generate-upload-url", None, {}, 405),
    ("POST", "/v1/files/upload/no-such-upload", b"x", MP, 404),
    ("GET", "/v1/files/upload/no-such-upload", None, {}, 405),
    ("GET", f"/v1/files/publish-file/{PUB}/{SUB}/0/room/0/%7B", None, {}, 400),
    ("GET", f"/v1/files/publish-file/{PUB}/{SUB}/0/room/0/5", None, {}, 400),
    ("GET", f"/v1/files/publish-file/{PUB}/{SUB}/0/room/0/%7B%22file%22%3A1%7D", None, {}, 400),
    ("GET", f"/v1/files/publish-file/{PUB}/{SUB}/0/room/0/%22x%22?meta=%5B", None, {}, 400),
    ("GET", f"/v1/files/publish-file/{PUB}/{SUB}/0/room/0/%22x%22?ttl=abc", None, {}, 400),
    ("GET", f"/v1/files/publish-file/pub-c-wrong/{SUB}/0/room/0/%22x%22", None, {}, 400),
    ("GET", f"/v1/files/publish-file/{PUB}/{SUB}/0/room", None, {}, 400),
    ("GET", f"/v1/files/{SUB}/channels/room/files?limit=abc", None, {}, 400),
    ("GET", f"/v1/files/{SUB}/channels/room/files?limit=0", None, {}, 400),
    ("GET", f"/v1/files/{SUB}/channels/room/files?next=%25%25garbage", None, {}, 400),
    ("GET", f"/v1/files/{SUB}/channels/room/files?next=WzEsMl0", None, {}, 400),
    ("GET", f"/v1/files/{SUB}/channels/room/files/no-id/no-name", None, {}, 404),
    ("GET", f"/v1/files/{SUB}/channels//files/no-id/no-name", None, {}, 400),
    ("DELETE", f"/v1/files/{SUB}/channels/room/files/no-id/no-name", None, {}, 404),
    ("PUT", f"/v1/files/{SUB}/channels/room/files/no-id/no-name", None, {}, 405),
    ("GET", f"/v1/files/download/{SUB}/room/id/name?exp=x&sig=y", None, {}, 403),
    ("GET", "/v1/files/download/sub-c-nope/room/id/name?exp=1&sig=y", None, {}, 400),
    ("GET", "/v1/files/what/ever", None, {}, 404),
    ("GET", f"/v1/files/{SUB}/channels/room/files/a/b/c", None, {}, 404),
]


def test_a_file_message_for_an_unknown_file_is_relayed(realtime_server: RealtimeServer) -> None:
    # The real service answers 200 [1,"Sent",tt] and does not check the file id.
    message = "%7B%22file%22%3A%7B%22id%22%3A%22n%22%2C%22name%22%3A%22n%22%7D%7D"
    status, _, answer = raw(
        realtime_server, "GET", f"/v1/files/publish-file/{PUB}/{SUB}/0/room/0/{message}"
    )
    assert status == 200
    assert json.loads(answer)[:2] == [1, "Sent"]


@pytest.mark.parametrize(("method", "path", "body", "headers", "expected"), GARBAGE)
def test_garbage_gets_a_json_4xx_and_the_server_keeps_serving(
    realtime_server: RealtimeServer,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    expected: int,
) -> None:
    status, _, answer = raw(realtime_server, method, path, body, headers)
    assert status == expected, answer
    parsed = json.loads(answer)
    assert parsed["status"] == expected if isinstance(parsed, dict) else parsed[0] == 0
    assert_still_serving(realtime_server)


UPLOAD_GARBAGE: list[tuple[bytes, dict[str, str]]] = [
    (b"plain", {"Content-Type": "text/plain"}),
    (b"x", {}),
    (b"x", {"Content-Type": "multipart/form-data"}),  # no boundary
    (b"x", {"Content-Type": "multipart/form-data; boundary=" + "b" * 80}),
    (b"no boundary at all", MP),
    (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\ntruncated'.encode(), MP),
    (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--{BOUNDARY}'.encode(),
        MP,
    ),
    (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="key"\r\n\r\nwrong\r\n--{BOUNDARY}--\r\n'.encode(),
        MP,
    ),
    (f"--{BOUNDARY}--\r\n".encode(), MP),  # no file part
    (
        f"--{BOUNDARY}\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner--\r\n--{BOUNDARY}--\r\n".encode(),
        MP,
    ),
    (f"--{BOUNDARY}\r\n" + "X-Long: " + "h" * 20_000 + "\r\n\r\n", MP),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("body", "headers"), UPLOAD_GARBAGE)
def test_upload_garbage_gets_a_json_400_and_stores_nothing(
    realtime_server: RealtimeServer, body: bytes | str, headers: dict[str, str]
) -> None:
    upload: PendingUpload = on_loop(
        realtime_server,
        lambda store: store.create_upload(SUB, "garbage", "g.bin", max_bytes=1000),
    )
    payload = body.encode() if isinstance(body, str) else body
    status, _, answer = raw(realtime_server, "POST", upload.path, payload, headers)
    assert status == 400, answer
    assert json.loads(answer)["status"] == 400
    assert on_loop(realtime_server, lambda s: s.list_files(SUB, "garbage").files) == []
    assert_still_serving(realtime_server)
