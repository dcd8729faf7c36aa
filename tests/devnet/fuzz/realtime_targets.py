"""Valid requests to every realtime route, for the endpoint fuzzer to mutate.

Each template's ``route`` names the ``(METHOD, canonical path)`` the router lists, so the
fuzzer can prove it covers every route. Bodies are the ones the per-endpoint tests send.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from blocks_devnet.realtime.access_tokens import (
    ALL_PERMISSIONS,
    READ,
    WRITE,
    TokenGrant,
    issue_token,
)
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.signing import parse_query_string, request_signature
from tests.devnet.fuzz.mutator import Template
from tests.devnet.fuzz.raw_http import RawRequest, q, segments

CHANNEL = "fz"
UUID = "fuzzer"
BOUNDARY = b"fuzz-boundary-7d1c"


def make_signer(keyset: Keyset) -> Callable[[RawRequest], RawRequest]:
    """Re-sign a (mutated) request with ``keyset``'s secret key, as a server client does.

    Requests the official client could never sign (non-UTF-8, duplicate keys) go unsigned.
    """

    def sign(request: RawRequest) -> RawRequest:
        kept = [(k, v) for k, v in request.query if k not in (b"signature", b"timestamp")]
        query = (*kept, (b"timestamp", str(int(time.time())).encode()))
        unsigned = replace(request, query=query)
        try:
            target = unsigned.target.decode("utf-8")
            path, _, raw_query = target.partition("?")
            signature = request_signature(
                method=request.method.decode("ascii"),
                raw_path=path,
                query=parse_query_string(raw_query),
                body=request.body,
                publish_key=keyset.publish_key,
                subscribe_key=keyset.subscribe_key,
                secret_key=keyset.secret_key,
            )
        except (UnicodeDecodeError, ValueError):
            return request
        return replace(unsigned, query=(*query, (b"signature", q(signature))))

    return sign


def pam_credentials(keyset: Keyset, revoked: str) -> tuple[bytes, ...]:
    """Forged, expired, revoked, foreign and garbage Access Manager tokens for ``keyset``."""
    now = int(time.time())
    grant = TokenGrant(
        issued_at=now,
        ttl_minutes=60,
        channels={CHANNEL: READ | WRITE},
        channel_patterns={".*": ALL_PERMISSIONS},
        group_patterns={".*": ALL_PERMISSIONS},
    )
    valid = issue_token(grant, keyset.secret_key)
    return (
        q(valid),
        q(issue_token(grant, "sec-c-forged")),
        q(issue_token(replace(grant, issued_at=now - 7200, ttl_minutes=1), keyset.secret_key)),
        q(issue_token(replace(grant, authorized_uuid="someone-else"), keyset.secret_key)),
        q(revoked),
        q(valid[:-7]),
        q(valid + "AA"),
        b"qEF2AkF0GmEI",
        b"%ff%fe",
        b"x" * 5000,
        b"",
    )


@dataclass(frozen=True)
class StoredFile:
    """A file already on ``CHANNEL`` and a fresh upload id, made before each round."""

    file_id: str
    name: str
    upload_id: str
    upload_key: str
    download_query: tuple[tuple[bytes, bytes | None], ...]


def multipart_body(object_key: str, data: bytes = b"hello fuzz") -> bytes:
    """An S3-style form: ``key``, ``Content-Type``, then the ``file`` part."""
    lines = []
    for name, value in (("key", object_key), ("Content-Type", "text/plain")):
        lines += [
            b"--" + BOUNDARY,
            f'Content-Disposition: form-data; name="{name}"'.encode(),
            b"",
            value.encode(),
        ]
    lines += [
        b"--" + BOUNDARY,
        b'Content-Disposition: form-data; name="file"; filename="a.txt"',
        b"Content-Type: text/plain",
        b"",
        data,
        b"--" + BOUNDARY + b"--",
        b"",
    ]
    return b"\r\n".join(lines)


def realtime_templates(
    keyset: Keyset,
    stored: StoredFile,
    *,
    credentials: tuple[bytes, ...],
    auth: bytes | None,
    cursor: int,
) -> list[Template]:
    """One valid request per realtime route on ``keyset`` (``auth`` is a valid token or None)."""
    pub, sub = keyset.publish_key, keyset.subscribe_key
    sign = make_signer(keyset)
    base: tuple[tuple[bytes, bytes | None], ...] = ((b"uuid", UUID.encode()),)
    if auth is not None:
        base += ((b"auth", auth),)
    meta = q(json.dumps({"sender": "x", "n": 1}))
    grant_body = {
        "ttl": 60,
        "permissions": {
            "resources": {"channels": {CHANNEL: 3}, "groups": {}, "uuids": {}},
            "patterns": {"channels": {"^fz-.*$": 1}, "groups": {}, "uuids": {}},
            "meta": {"role": "fuzz"},
            "uuid": UUID,
        },
    }
    file_message = q(
        json.dumps({"message": "hi", "file": {"id": stored.file_id, "name": stored.name}})
    )
    file_path = f"/v1/files/{sub}/channels/{CHANNEL}/files/{stored.file_id}/{stored.name}"
    presence = f"/v2/presence/sub-key/{sub}"
    revocable = issue_token(
        TokenGrant(int(time.time()), 5, channels={f"{CHANNEL}-{uuid.uuid4()}": READ}),
        keyset.secret_key,
    )

    def t(
        route: tuple[str, str],
        method: str,
        path: str,
        query: tuple[tuple[bytes, bytes | None], ...] = (),
        *,
        body: bytes = b"",
        json_body: object = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        signed: bool = False,
        expect: tuple[int, ...] = (200,),
    ) -> Template:
        request = RawRequest(
            method=method.encode(),
            segments=segments(path),
            query=base + query,
            headers=headers,
            body=json.dumps(json_body).encode() if json_body is not None else body,
        )
        return Template(
            route=route,
            request=sign(request) if signed else request,
            json_body=json_body,
            sign=sign,
            credentials=credentials,
            expect=expect,
        )

    json_ct = ((b"Content-Type", b"application/json"),)
    templates = [
        t(("GET", "/time/0"), "GET", "/time/0"),
        t(
            ("GET", "/publish/{tail}"),
            "GET",
            f"/publish/{pub}/{sub}/0/{CHANNEL}/0/%22hi%22",
            (
                (b"meta", meta),
                (b"store", b"1"),
                (b"ttl", b"1"),
                (b"custom_message_type", b"fz-t"),
                (b"seqn", b"1"),
            ),
        ),
        t(
            ("POST", "/publish/{tail}"),
            "POST",
            f"/publish/{pub}/{sub}/0/{CHANNEL}/0",
            ((b"meta", meta),),
            json_body={"text": "hi", "n": [1, 2]},
            headers=json_ct,
        ),
        t(("GET", "/signal/{tail}"), "GET", f"/signal/{pub}/{sub}/0/{CHANNEL}/0/%22s%22"),
        t(
            ("GET", "/v2/subscribe/{tail}"),
            "GET",
            f"/v2/subscribe/{sub}/{CHANNEL},{CHANNEL}-pnpres/0",
            (
                (b"tt", str(cursor).encode()),
                (b"tr", b"1"),
                (b"heartbeat", b"60"),
                (b"state", q(json.dumps({CHANNEL: {"a": 1}}))),
                (b"filter-expr", q("meta.sender != 'me' && (meta.n > 0 || !(meta.x == 'y'))")),
            ),
        ),
        t(
            ("GET", "/v2/presence/sub-key/{tail}"),
            "GET",
            f"{presence}/channel/{CHANNEL}/heartbeat",
            ((b"heartbeat", b"60"), (b"state", q(json.dumps({CHANNEL: {"a": 1}})))),
        ),
        t(("GET", "/v2/presence/sub-key/{tail}"), "GET", f"{presence}/channel/{CHANNEL}/leave"),
        t(
            ("GET", "/v2/presence/sub-key/{tail}"),
            "GET",
            f"{presence}/channel/{CHANNEL},other",
            ((b"state", b"1"), (b"disable_uuids", b"0"), (b"limit", b"10"), (b"offset", b"0")),
        ),
        t(("GET", "/v2/presence/sub-key/{tail}"), "GET", presence),
        t(("GET", "/v2/presence/sub-key/{tail}"), "GET", f"{presence}/uuid/{UUID}"),
        t(
            ("GET", "/v2/presence/sub-key/{tail}"),
            "GET",
            f"{presence}/channel/{CHANNEL}/uuid/{UUID}",
        ),
        t(
            ("GET", "/v2/presence/sub-key/{tail}"),
            "GET",
            f"{presence}/channel/{CHANNEL}/uuid/{UUID}/data",
            ((b"state", q(json.dumps({"a": 1}))),),
        ),
        t(
            ("GET", "/v2/history/{tail}"),
            "GET",
            f"/v2/history/sub-key/{sub}/channel/{CHANNEL}",
            (
                (b"count", b"10"),
                (b"start", str(cursor + 1).encode()),
                (b"end", b"1"),
                (b"reverse", b"true"),
                (b"include_token", b"true"),
                (b"include_meta", b"true"),
            ),
        ),
        t(
            ("GET", "/v3/history/{tail}"),
            "GET",
            f"/v3/history/sub-key/{sub}/channel/{CHANNEL},other",
            ((b"max", b"10"), (b"include_meta", b"true"), (b"include_uuid", b"false")),
        ),
        t(
            ("GET", "/v3/history/{tail}"),
            "GET",
            f"/v3/history/sub-key/{sub}/message-counts/{CHANNEL},other",
            ((b"channelsTimetoken", b"1,2"),),
        ),
        t(
            ("GET", "/v3/history-with-actions/{tail}"),
            "GET",
            f"/v3/history-with-actions/sub-key/{sub}/channel/{CHANNEL}",
            ((b"max", b"5"), (b"end", b"1")),
        ),
        t(
            ("DELETE", "/v3/history/{tail}"),
            "DELETE",
            f"/v3/history/sub-key/{sub}/channel/{CHANNEL}-gone",
            ((b"start", b"1"), (b"end", b"2")),
        ),
        t(
            ("*", "/v1/files/{tail}"),
            "POST",
            f"/v1/files/{sub}/channels/{CHANNEL}/generate-upload-url",
            json_body={"name": "fuzz.txt"},
            headers=json_ct,
        ),
        t(
            ("*", "/v1/files/{tail}"),
            "POST",
            f"/v1/files/upload/{stored.upload_id}",
            body=multipart_body(stored.upload_key),
            headers=((b"Content-Type", b"multipart/form-data; boundary=" + BOUNDARY),),
            expect=(204,),
        ),
        t(
            ("*", "/v1/files/{tail}"),
            "GET",
            f"/v1/files/publish-file/{pub}/{sub}/0/{CHANNEL}/0/{file_message.decode()}",
            ((b"store", b"1"), (b"ttl", b"1"), (b"meta", meta)),
        ),
        t(
            ("*", "/v1/files/{tail}"),
            "GET",
            f"/v1/files/{sub}/channels/{CHANNEL}/files",
            ((b"limit", b"2"),),
        ),
        # Before the routes whose mutations may delete the file.
        t(
            ("*", "/v1/files/{tail}"),
            "GET",
            f"/v1/files/download/{sub}/{CHANNEL}/{stored.file_id}/{stored.name}",
            stored.download_query,
        ),
        t(("*", "/v1/files/{tail}"), "GET", file_path, expect=(307,)),
        t(("*", "/v1/files/{tail}"), "DELETE", f"{file_path}-missing", expect=(404,)),
        t(
            ("POST", "/v3/pam/{sub}/grant"),
            "POST",
            f"/v3/pam/{sub}/grant",
            json_body=grant_body,
            headers=json_ct,
            signed=True,
        ),
        t(
            ("GET", "/v1/channel-registration/sub-key/{tail}"),
            "GET",
            f"/v1/channel-registration/sub-key/{sub}/channel-group/fuzz-group",
            ((b"add", f"{CHANNEL},other".encode()),),
        ),
        t(
            ("GET", "/v1/channel-registration/sub-key/{tail}"),
            "GET",
            f"/v1/channel-registration/sub-key/{sub}/channel-group/fuzz-group",
        ),
        t(
            ("GET", "/v1/channel-registration/sub-key/{tail}"),
            "GET",
            f"/v1/channel-registration/sub-key/{sub}/channel-group/fuzz-group/remove",
        ),
        t(
            ("DELETE", "/v3/pam/{sub}/grant/{tail}"),
            "DELETE",
            f"/v3/pam/{sub}/grant/{q(revocable).decode()}",
            signed=True,
        ),
    ]
    return templates + preflight_templates(templates)


#: What a page's fetch of a JSON POST asks first (realtime/preflight.py answers it).
PREFLIGHT_HEADERS = (
    (b"Origin", b"http://page.example"),
    (b"Access-Control-Request-Method", b"POST"),
    (b"Access-Control-Request-Headers", b"content-type"),
)


def preflight_templates(templates: list[Template]) -> list[Template]:
    """An ``OPTIONS`` preflight per route, on its first template's path (the files API's
    catch-all route answers its own: its ``*`` templates cover it)."""
    firsts: dict[str, Template] = {}
    for template in templates:
        if template.route[0] != "*":
            firsts.setdefault(template.route[1], template)
    return [
        Template(
            route=("OPTIONS", canonical),
            request=replace(first.request, method=b"OPTIONS", headers=PREFLIGHT_HEADERS, body=b""),
            expect=(204,),
        )
        for canonical, first in firsts.items()
    ]
