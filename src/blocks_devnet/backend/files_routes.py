"""Presigned uploads (protocol.md §5.6): ``request-upload`` and ``confirm-upload``.

The upload target itself is the realtime server's S3-style endpoint
(``POST /v1/files/upload/{uploadId}``), and files land in the realtime file store on the
task channel, so the official client's ``download_file(channel, fileId, fileName)`` returns
them with a token that grants read on that channel.

- ``consumer-input``: a consumer uploads request files before SendMessage. The first
  upload (with ``agentName``) opens an upload session that reserves the task's id; later
  uploads join it with ``uploadSessionId``. SendMessage with that ``uploadSessionId``
  attaches the files to the request parts (see ``tasks/uploads.py``).
- ``provider-output``: the agent instance running a task uploads a large artifact;
  confirming it publishes the ``artifact`` event on the task channel (as the backend) and
  returns the file ArtifactRef.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from blocks_devnet.backend.authn import authenticate
from blocks_devnet.backend.context import BackendContext, context_of
from blocks_devnet.backend.errors import BackendError, bad_request, forbidden
from blocks_devnet.backend.http import (
    check_protocol_version,
    json_response,
    optional_str,
    read_json_object,
    require_str,
)
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks import errors
from blocks_devnet.backend.tasks.uploads import UploadRecord, UploadSession
from blocks_devnet.realtime.file_store import InvalidFileName, validate_file_name
from blocks_devnet.realtime.files import request_base_url
from blocks_network.protocol.artifacts import DEFAULT_MIME_TYPE, FileArtifactRef
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.constants import (
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
    MAX_UPLOAD_BYTES,
    UPLOAD_ROLE_CONSUMER_INPUT,
    UPLOAD_ROLE_PROVIDER_OUTPUT,
)
from blocks_network.protocol.events import ArtifactEvent

#: An upload URL is usable this long after request-upload.
UPLOAD_TTL_SECONDS = 3600


def _file_size(body: dict[str, Any]) -> int:
    size = body.get("fileSize")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad_request(
            "Field 'fileSize' is required: the file's size in bytes (an integer ≥ 0)."
        )
    if size > MAX_UPLOAD_BYTES:
        raise BackendError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"The file is {size} bytes; uploads are limited to {MAX_UPLOAD_BYTES} bytes (25 MiB).",
            details={"maxBytes": MAX_UPLOAD_BYTES},
        )
    return size


def _file_name(body: dict[str, Any]) -> str:
    name = require_str(body, "fileName", max_length=255)
    try:
        return validate_file_name(name)
    except InvalidFileName as exc:
        raise bad_request(f"{exc}. Send the bare file name, e.g. 'report.pdf'.") from None


def _consumer_session(
    ctx: BackendContext, principal: Principal, body: dict[str, Any], part_id: str, size: int
) -> UploadSession:
    uploads = ctx.tasks.uploads
    session_id = optional_str(body, "uploadSessionId")
    session: UploadSession | None = None
    if session_id:
        session = uploads.session(session_id)
        if session is None or session.owner_id != principal.user_id:
            raise BackendError(
                404,
                errors.UPLOAD_NOT_FOUND,
                f"Unknown uploadSessionId {session_id!r}: start a new one with agentName.",
            )
        if session.used:
            raise errors.conflict(
                f"Upload session {session_id!r} already fed task {session.task_id}; start a new one."
            )
        agent_name = session.agent_name
    else:
        agent_name = require_str(body, "agentName", max_length=128)
    agent = ctx.registry.get(agent_name)
    if agent is None or not ctx.registry.visible_to(agent, principal):
        raise errors.agent_not_found(agent_name)
    inputs = {i.id: i for i in agent.parsed_card().inputs}
    if inputs and part_id not in inputs:
        raise errors.invalid_params(
            f"Part id {part_id!r} is not an input of agent {agent_name!r}; declared inputs: "
            f"{', '.join(sorted(inputs))}."
        )
    spec = inputs.get(part_id)
    if spec is not None and spec.max_size_bytes is not None and size > spec.max_size_bytes:
        raise BackendError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"Input {part_id!r} of agent {agent_name!r} accepts at most {spec.max_size_bytes} bytes; "
            f"the file is {size}.",
        )
    if session is not None:
        return session
    return uploads.create_session(
        principal.user_id, principal.org_id, agent.agent_name, agent.environment, ctx.tasks.now_ms()
    )


async def handle_request_upload(request: web.Request) -> web.Response:
    """``{role, fileName, fileSize, mimeType, ...}`` → ``{uploadSessionId?, uploadId,
    uploadUrl, formFields}``."""
    check_protocol_version(request)
    principal = authenticate(request)
    ctx = context_of(request)
    body = await read_json_object(request)
    role = require_str(body, "role", max_length=64)
    file_name = _file_name(body)
    size = _file_size(body)
    mime_type = optional_str(body, "mimeType", max_length=255) or DEFAULT_MIME_TYPE
    base_url = request_base_url(request)
    tasks = ctx.tasks
    now = tasks.now_ms()
    session: UploadSession | None = None
    with ctx.db.transaction():
        if role == UPLOAD_ROLE_CONSUMER_INPUT:
            part_id = require_str(body, "partId", max_length=256)
            output_id = None
            session = _consumer_session(ctx, principal, body, part_id, size)
            task_id, org_id, environment, owner = (
                session.task_id,
                session.org_id,
                session.environment,
                principal.user_id,
            )
        elif role == UPLOAD_ROLE_PROVIDER_OUTPUT:
            part_id = None
            output_id = optional_str(body, "outputId", max_length=256)
            record = _running_task_of(ctx, principal, require_str(body, "taskId"))
            task_id, org_id, environment = record.task_id, record.org_id, record.environment
            owner = principal.instance_id or ""
        else:
            raise bad_request(
                f"Field 'role' must be {UPLOAD_ROLE_CONSUMER_INPUT!r} or {UPLOAD_ROLE_PROVIDER_OUTPUT!r}."
            )
        channel = task_channel(org_id, task_id)
        pending = ctx.realtime.file_store.create_upload(
            ctx.keyset_for_environment(environment).subscribe_key,
            channel,
            file_name,
            max_bytes=max(1, size),
            expected_bytes=size,
            ttl_seconds=UPLOAD_TTL_SECONDS,
            content_type=mime_type,
            metadata={"role": role, "taskId": task_id},
        )
        tasks.uploads.add(
            UploadRecord(
                upload_id=pending.upload_id,
                role=role,
                owner_id=owner,
                task_id=task_id,
                environment=environment,
                channel=channel,
                file_id=pending.file_id,
                file_name=file_name,
                mime_type=pending.content_type,
                declared_size=size,
                created_ms=now,
                session_id=None if session is None else session.session_id,
                part_id=part_id,
                output_id=output_id,
            )
        )
    answer: dict[str, Any] = {
        "uploadId": pending.upload_id,
        "uploadUrl": base_url + pending.path,
        "formFields": pending.form_fields,
        "fileId": pending.file_id,
        "expiresAt": pending.expiration_date,
    }
    if session is not None:
        answer["uploadSessionId"] = session.session_id
    return json_response(answer, mutation=True)


def _running_task_of(ctx: BackendContext, principal: Principal, task_id: str) -> Any:
    if principal.kind != "agent" or principal.instance_id is None:
        raise forbidden(
            "Only the agent instance running the task may upload its outputs (use the agent's token)."
        )
    record = ctx.tasks.store.get(task_id)
    if record is None or record.agent_name != principal.agent_name:
        raise errors.task_not_found(task_id)
    if record.instance_id != principal.instance_id:
        raise forbidden(f"Task {task_id} runs on another instance of {record.agent_name}.")
    if record.terminal:
        raise errors.conflict(
            f"Task {task_id} already ended ({record.state}); publish outputs before the terminal."
        )
    return record


async def handle_confirm_upload(request: web.Request) -> web.Response:
    """``{uploadId}`` → consumer ``{uploadId}``; provider ``{uploadId, artifactRef}`` after
    publishing the ``artifact`` event on the task channel."""
    check_protocol_version(request)
    principal = authenticate(request)
    ctx = context_of(request)
    body = await read_json_object(request)
    upload_id = require_str(body, "uploadId")
    uploads = ctx.tasks.uploads
    record = uploads.get(upload_id)
    provider = record is not None and record.role == UPLOAD_ROLE_PROVIDER_OUTPUT
    caller = principal.instance_id if provider else principal.user_id
    if record is None or record.owner_id != caller:
        raise BackendError(
            404,
            errors.UPLOAD_NOT_FOUND,
            f"Unknown uploadId {upload_id!r}: request an upload first.",
        )
    if record.confirmed_ms is not None and record.artifact_ref is not None:
        return _confirmed(record.upload_id, record.artifact_ref, provider)
    store = ctx.realtime.file_store
    pending = store.get_upload(upload_id)
    subscribe_key = ctx.keyset_for_environment(record.environment).subscribe_key
    info = store.file_info(subscribe_key, record.channel, record.file_id)
    if pending is None or not pending.completed or info is None:
        raise BackendError(
            409,
            errors.UPLOAD_INCOMPLETE,
            "The file has not been uploaded yet: POST it to uploadUrl, then confirm.",
        )
    task = None
    if provider:
        task = _running_task_of(ctx, principal, record.task_id)
    ref = FileArtifactRef(
        channel=record.channel,
        file_id=record.file_id,
        size=info.size,
        mime_type=record.mime_type,
        file_name=record.file_name,
    )
    if uploads.confirm(upload_id, ctx.tasks.now_ms(), ref.to_wire()) and task is not None:
        event = ArtifactEvent(
            task.task_id, ref, output_id=record.output_id, protocol_version=task.protocol_version
        )
        ctx.tasks.publish_event(task, event.to_wire())
    return _confirmed(upload_id, ref.to_wire(), provider)


def _confirmed(upload_id: str, ref: dict[str, Any], provider: bool) -> web.Response:
    answer: dict[str, Any] = {"uploadId": upload_id}
    if provider:
        answer["artifactRef"] = ref
    return json_response(answer, mutation=True)


def add_routes(app: web.Application) -> None:
    """Mount the two upload routes."""
    app.router.add_post(API_PATH_FILES_REQUEST_UPLOAD, handle_request_upload)
    app.router.add_post(API_PATH_FILES_CONFIRM_UPLOAD, handle_confirm_upload)
