"""The PubNub Files API (pubnub-wire.md §6), backed by :mod:`.file_store`.

Routes (all under ``/v1/files/``, dispatched here from the raw path because channel names
may hold an encoded ``/``):

* ``POST {sub}/channels/{ch}/generate-upload-url``: write permission; a pending upload.
* ``POST upload/{upload_id}``: the S3-style multipart upload; the unguessable, expiring,
  single-use id is the authorisation (the client sends no auth here). 204 on success.
* ``GET publish-file/{pub}/{sub}/0/{ch}/0/{msg}``: write permission; fans out ``e:4``.
* ``GET {sub}/channels/{ch}/files``: read permission; ``limit`` and ``next``.
* ``GET {sub}/channels/{ch}/files/{id}/{name}``: read permission; 307 to a signed link.
* ``GET download/{sub}/{ch}/{id}/{name}?exp=..&sig=..``: the bytes (the final GET carries
  no auth, so the link's HMAC is the authorisation).
* ``DELETE {sub}/channels/{ch}/files/{id}/{name}``: delete permission.

See docs/files.md for the choices made.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from blocks_devnet.json_input import parse_json
from blocks_devnet.realtime.access import DELETE, READ, WRITE
from blocks_devnet.realtime.errors import (
    RealtimeError,
    method_not_allowed,
    publish_error,
    service_error,
)
from blocks_devnet.realtime.file_store import (
    DOWNLOAD_URL_TTL_SECONDS,
    MAX_LIST_LIMIT,
    FileSizeMismatch,
    FileStoreError,
    FileTooLarge,
    InvalidFileName,
    PendingUpload,
    UploadAlreadyCompleted,
    UploadExpired,
    UploadNotFound,
    check_download_signature,
    download_signature,
    iso_utc,
    validate_file_name,
)
from blocks_devnet.realtime.http import (
    CORS_HEADERS,
    RealtimeRequest,
    build_request,
    decode_segment,
    json_response,
    raw_segments,
    validate_channel,
)
from blocks_devnet.realtime.message_log import FILE
from blocks_devnet.realtime.preflight import preflight_response
from blocks_devnet.realtime.publish import (
    MAX_MESSAGE_BYTES,
    append_publish,
    parse_message,
    parse_publish_options,
)
from blocks_devnet.realtime.service import RealtimeService, service_of

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE = "Files"
#: What the Files API's routes take between them (its preflights allow all of them).
FILES_METHODS = "DELETE, GET, POST"
#: The generate-upload-url body is ``{"name": ...}``; anything bigger is not a request.
MAX_REQUEST_BODY_BYTES = 64 * 1024
#: Form fields before the ``file`` part: how many, and how large each may be.
MAX_FORM_FIELDS = 32
MAX_FORM_FIELD_BYTES = 8 * 1024
#: Multipart framing allowed on top of the file when checking ``Content-Length`` up front.
MAX_FORM_OVERHEAD_BYTES = MAX_FORM_FIELDS * (MAX_FORM_FIELD_BYTES + 512) + 4096
READ_CHUNK_BYTES = 64 * 1024
MAX_ERROR_REASON_CHARS = 200
#: A cached download redirect is stale this long before its link expires.
REDIRECT_CACHE_MARGIN_SECONDS = 60

_HOST_RE = re.compile(r"^(?:[A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")

# The store's refusals, as HTTP statuses (S3 answers 403 to an expired policy and 400
# EntityTooLarge to an oversized file).
_STORE_ERROR_STATUS: dict[type[FileStoreError], int] = {
    InvalidFileName: 400,
    FileTooLarge: 400,
    FileSizeMismatch: 400,
    UploadNotFound: 404,
    UploadExpired: 403,
    UploadAlreadyCompleted: 409,
}


def files_error(status: int, message: str) -> RealtimeError:
    return service_error(status, message, SERVICE)


def store_error(exc: FileStoreError) -> RealtimeError:
    """Translate a :class:`FileStoreError` at the HTTP boundary."""
    return files_error(_STORE_ERROR_STATUS.get(type(exc), 400), str(exc))


def request_base_url(request: web.Request) -> str:
    """``scheme://host[:port]`` as the client reached this server (from ``Host``).

    Raises a 400 :class:`RealtimeError` when the ``Host`` header is not a plain host.
    """
    host = request.host
    if not _HOST_RE.match(host):
        raise files_error(400, "Invalid Host header: send the server's host[:port]")
    return f"{request.scheme}://{host}"


def upload_url(request: web.Request, upload: PendingUpload) -> str:
    """The absolute upload target of ``upload`` on this server."""
    return request_base_url(request) + upload.path


def add_routes(router: web.UrlDispatcher) -> None:
    """Register this module's routes."""
    router.add_route("*", "/v1/files/{tail:.+}", handle_files)


async def handle_files(request: web.Request) -> web.StreamResponse:
    """Dispatch a ``/v1/files/...`` request on its raw (still encoded) segments."""
    segments = raw_segments(request)
    method = request.method
    if method == "OPTIONS":  # a browser's CORS preflight (preflight.py)
        return preflight_response(request, FILES_METHODS)
    count = len(segments)
    if count >= 6 and segments[3] == "channels":
        if count == 6 and segments[5] == "generate-upload-url":
            return await _only(method, "POST", _generate_upload_url, request)
        if count == 6 and segments[5] == "files":
            return await _only(method, "GET", _list_files, request)
        if count == 8 and segments[5] == "files":
            if method == "DELETE":
                return await _delete_file(request)
            return await _only(method, "GET", _get_file_url, request)
    elif count == 4 and segments[2] == "upload":
        return await _only(method, "POST", _upload, request)
    elif count >= 3 and segments[2] == "publish-file":
        return await _only(method, "GET", _publish_file, request)
    elif count == 7 and segments[2] == "download":
        return await _only(method, "GET", _download, request)
    raise files_error(404, "Not Found: no Files API endpoint has this path")


async def _only(
    method: str, allowed: str, handler: Handler, request: web.Request
) -> web.StreamResponse:
    if method != allowed:
        raise method_not_allowed(method)
    return await handler(request)


def _channel_request(request: web.Request) -> tuple[RealtimeService, RealtimeRequest, str]:
    """``/v1/files/{sub}/channels/{ch}/...``: the service, parsed request and channel."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=2)
    channel = decode_segment(req.segments[4])
    validate_channel(channel)
    return service, req, channel


async def _generate_upload_url(request: web.Request) -> web.Response:
    service, req, channel = _channel_request(request)
    if request.content_length is not None and request.content_length > MAX_REQUEST_BODY_BYTES:
        raise files_error(413, 'Request body too large: send {"name": "<file name>"}')
    body = await request.read()
    service.access.verify_signature(req, body)
    try:
        payload = parse_json(body)
    except ValueError:
        raise files_error(400, 'Invalid JSON body: send {"name": "<file name>"}') from None
    if not isinstance(payload, dict) or "name" not in payload:
        raise files_error(400, 'Missing file name: send {"name": "<file name>"}')
    try:
        name = validate_file_name(payload["name"])
    except InvalidFileName as exc:
        raise store_error(exc) from None
    service.access.require(req, channels=[channel], permission=WRITE)
    base_url = request_base_url(request)
    upload = service.file_store.create_upload(
        req.keyset.subscribe_key, channel, name, max_bytes=req.keyset.max_file_bytes
    )
    return json_response(
        {
            "status": 200,
            "data": {"id": upload.file_id, "name": upload.name},
            "file_upload_request": {
                "url": base_url + upload.path,
                "method": "POST",
                "expiration_date": upload.expiration_date,
                "form_fields": upload.form_fields,
            },
        }
    )


async def _upload(request: web.Request) -> web.Response:
    store = service_of(request).file_store
    upload_id = decode_segment(raw_segments(request)[3])
    try:
        upload = store.open_upload(upload_id)
    except FileStoreError as exc:
        raise store_error(exc) from None
    if not request.content_type.lower().startswith("multipart/form-data"):
        raise files_error(
            400, "Send the upload as multipart/form-data: the form fields, then a 'file' part"
        )
    limit = upload.max_bytes + MAX_FORM_OVERHEAD_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise store_error(FileTooLarge(upload.max_bytes))
    try:
        data = await _read_form(await request.multipart(), upload)
        store.complete_upload(upload_id, data)
    except FileStoreError as exc:
        raise store_error(exc) from None
    except (ValueError, AssertionError, KeyError, RuntimeError, HttpProcessingError) as exc:
        # aiohttp's multipart reader reports malformed framing with these.
        logger.debug("malformed upload body for %s: %r", upload.file_id, exc)
        # The reason may quote the body's bytes: keep the answer short.
        reason = str(exc)[:MAX_ERROR_REASON_CHARS]
        raise files_error(400, f"Malformed multipart/form-data body: {reason}") from None
    return web.Response(status=204, headers=CORS_HEADERS)


async def _read_form(reader: MultipartReader, upload: PendingUpload) -> bytes:
    """The ``file`` part's bytes, never more than the upload allows (raises FileTooLarge).

    The whole body is read up to its closing boundary, so a truncated upload is refused
    instead of being stored short.
    """
    data: bytes | None = None
    fields = 0
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader):
            raise files_error(400, "Nested multipart bodies are not supported")
        if part.name == "file" and data is None:
            data = await _read_part(part, upload.max_bytes, FileTooLarge(upload.max_bytes))
            continue
        if not part.name:
            raise ValueError("a part has no name")
        fields += 1
        if fields > MAX_FORM_FIELDS:
            raise files_error(400, f"Too many form fields: at most {MAX_FORM_FIELDS}")
        too_big = files_error(400, f"Form field {part.name!r} exceeds {MAX_FORM_FIELD_BYTES} bytes")
        value = await _read_part(part, MAX_FORM_FIELD_BYTES, too_big)
        # Fields after the file are ignored, as S3 does.
        if (
            data is None
            and part.name == "key"
            and value.decode(errors="replace") != upload.object_key
        ):
            raise files_error(
                400, "Form field 'key' does not match this upload: send the form fields unchanged"
            )
    if data is None:
        raise files_error(400, "The form has no 'file' part: send the file last, named 'file'")
    return data


async def _read_part(part: BodyPartReader, limit: int, too_large: Exception) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK_BYTES):
        data.extend(chunk)
        if len(data) > limit:
            raise too_large
    if not part.at_eof():
        raise ValueError("the body ended inside a part")
    return bytes(data)


async def _publish_file(request: web.Request) -> web.Response:
    """``/v1/files/publish-file/{pub}/{sub}/0/{ch}/0/{msg}`` → ``[1,"Sent","<tt>"]``."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=4)
    head = service.messages.clock.head
    segments = req.segments
    if len(segments) != 9:
        raise publish_error(
            400,
            "Invalid path: expected /v1/files/publish-file/{pub}/{sub}/0/{channel}/0/{message}",
            head(),
        )
    if decode_segment(segments[3]) != req.keyset.publish_key:
        raise publish_error(400, "Invalid Key", head())  # as a plain publish answers it
    channel = decode_segment(segments[6])
    validate_channel(channel)
    service.access.verify_signature(req, b"")
    if len(segments[8]) + len(segments[6]) > MAX_MESSAGE_BYTES:
        raise publish_error(413, "Message Too Large", head())
    message_text = decode_segment(segments[8]).strip()
    message = parse_message(message_text, head())
    _check_file_reference(message, head())
    # Stored unless the request says store=0 (the official client sends store=0 unless
    # send_file().should_store(True)); see docs/files.md.
    options = parse_publish_options(req, head())

    service.access.require(req, channels=[channel], permission=WRITE)
    # A file id this channel never saw is not refused: the real service relays the message
    # (200 [1,"Sent",tt]) and only the download of that file fails (docs/files.md).
    return append_publish(service, req, channel, message, message_text, options, message_type=FILE)


def _check_file_reference(message: Any, timetoken: int) -> None:
    """A 400 unless ``message`` is ``{"message":..,"file":{"id","name"}}`` or ciphertext.

    With a cipher key the client sends the whole object encrypted, as a JSON string the
    server cannot read, so it is relayed as-is.
    """
    if isinstance(message, str):
        return
    shape = 'Invalid file message: expected {"message": ..., "file": {"id": "...", "name": "..."}}'
    if not isinstance(message, dict):
        raise publish_error(400, shape, timetoken)
    file_ref = message.get("file")
    if not isinstance(file_ref, dict):
        raise publish_error(400, shape, timetoken)
    file_id, name = file_ref.get("id"), file_ref.get("name")
    if not isinstance(file_id, str) or not isinstance(name, str) or not file_id or not name:
        raise publish_error(400, shape, timetoken)


async def _list_files(request: web.Request) -> web.Response:
    service, req, channel = _channel_request(request)
    service.access.verify_signature(req, b"")
    service.access.require(req, channels=[channel], permission=READ)
    limit = req.int_param("limit", MAX_LIST_LIMIT, low=1, high=MAX_LIST_LIMIT)
    try:
        page = service.file_store.list_files(
            req.keyset.subscribe_key, channel, limit=limit, next=req.query.get("next") or None
        )
    except ValueError as exc:
        raise files_error(400, str(exc)) from None
    data = [
        {"name": f.name, "id": f.id, "size": f.size, "created": iso_utc(f.created)}
        for f in page.files
    ]
    return json_response({"status": 200, "data": data, "count": len(data), "next": page.next})


def _file_path_parts(req: RealtimeRequest) -> tuple[str, str]:
    return decode_segment(req.segments[6]), decode_segment(req.segments[7])


async def _get_file_url(request: web.Request) -> web.Response:
    """307 to a download link that carries its own authorisation."""
    service, req, channel = _channel_request(request)
    file_id, name = _file_path_parts(req)
    service.access.verify_signature(req, b"")
    service.access.require(req, channels=[channel], permission=READ)
    subscribe_key = req.keyset.subscribe_key
    if service.file_store.file_info(subscribe_key, channel, file_id, name) is None:
        raise files_error(404, "File not found: check the channel, file id and file name")
    expires = int(service.file_store.now()) + DOWNLOAD_URL_TTL_SECONDS
    signature = download_signature(
        req.keyset.secret_key, subscribe_key, channel, file_id, name, expires
    )
    path = "/".join(quote(part, safe="") for part in (subscribe_key, channel, file_id, name))
    location = f"{request_base_url(request)}/v1/files/download/{path}?exp={expires}&sig={signature}"
    # The real service's header (pubnub/python tests/integrational/fixtures/native_sync/
    # file_upload/download_file.yaml): a cached redirect stays usable until shortly before
    # its link expires.
    max_age = DOWNLOAD_URL_TTL_SECONDS - REDIRECT_CACHE_MARGIN_SECONDS
    cache_control = f"public, max-age={max_age}, immutable"
    return web.Response(
        status=307, headers={"Location": location, "Cache-Control": cache_control, **CORS_HEADERS}
    )


async def _download(request: web.Request) -> web.Response:
    """``/v1/files/download/{sub}/{ch}/{id}/{name}?exp=..&sig=..`` → the file's bytes."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=3)
    channel, file_id, name = (decode_segment(s) for s in req.segments[4:7])
    exp_text, signature = req.query.get("exp", ""), req.query.get("sig", "")
    if not exp_text or not signature:
        raise files_error(403, "Missing download signature: get a link with get_file_url")
    try:
        expires = int(exp_text)
    except ValueError:
        raise files_error(403, "Invalid download link: get a new one with get_file_url") from None
    subscribe_key = req.keyset.subscribe_key
    refusal = check_download_signature(
        req.keyset.secret_key,
        subscribe_key,
        channel,
        file_id,
        name,
        expires,
        signature,
        service.file_store.now(),
    )
    if refusal is not None:
        raise files_error(403, refusal)
    stored = service.file_store.get_file(subscribe_key, channel, file_id, name)
    if stored is None:
        raise files_error(404, "File not found: it was deleted")
    return web.Response(
        body=stored.data,
        headers={
            "Content-Type": stored.info.content_type,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "Cache-Control": "private, no-store",
            **CORS_HEADERS,
        },
    )


async def _delete_file(request: web.Request) -> web.Response:
    service, req, channel = _channel_request(request)
    file_id, name = _file_path_parts(req)
    service.access.verify_signature(req, b"")
    service.access.require(req, channels=[channel], permission=DELETE)
    if not service.file_store.delete_file(req.keyset.subscribe_key, channel, file_id, name):
        raise files_error(404, "File not found: check the channel, file id and file name")
    return json_response({"status": 200})
