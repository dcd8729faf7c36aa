"""Building and storing a new task record for SendMessage (card rules, uploads, defaults).

Split from the service so the rules that shape a record read in one place: the task
channel's org is the caller's organisation, the owner is the caller, ``hasStream``
defaults to what the agent's card declares, and consumer-input uploads of the request's
upload session become file ArtifactRefs on the request parts.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from blocks_devnet.backend.errors import BackendError
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks import errors
from blocks_devnet.backend.tasks.params import SendMessage, check_against_card
from blocks_devnet.backend.tasks.store import (
    STATE_QUEUED,
    STATE_SUBMITTED,
    TaskRecord,
    new_task_id,
)
from blocks_devnet.backend.tasks.uploads import UploadRecord, UploadSession
from blocks_network.protocol.constants import PROTOCOL_VERSION, TASK_KIND_PIPE
from blocks_network.protocol.parts import RequestPart

if TYPE_CHECKING:
    from blocks_devnet.backend.registry import AgentRecord
    from blocks_devnet.backend.tasks.service import TaskService


def caller_claims(principal: Principal) -> dict[str, Any]:
    """The JWT-ish claims StartTask carries (``sub`` is the owner fallback, §3.1)."""
    claims: dict[str, Any] = {
        "sub": principal.user_id,
        "org": principal.org_id,
        "kind": principal.kind,
    }
    if principal.agent_name is not None:
        claims["agentName"] = principal.agent_name
    return claims


def attach_uploads(
    parts: tuple[RequestPart, ...], uploads: list[UploadRecord]
) -> list[dict[str, Any]]:
    """Wire parts with each uploaded file's ArtifactRef put on the part with its partId
    (in upload order); uploads no part names are appended as parts of their own.

    Raises invalid params if an upload of the session was never confirmed.
    """
    by_part: dict[str | None, deque[UploadRecord]] = {}
    for upload in uploads:
        if upload.confirmed_ms is None or upload.artifact_ref is None:
            raise errors.invalid_params(
                f"Upload {upload.file_name!r} (part {upload.part_id!r}) was not confirmed: "
                "finish it with /api/v1/files/confirm-upload before sending the message."
            )
        by_part.setdefault(upload.part_id, deque()).append(upload)
    wire_parts = []
    for part in parts:
        wire = part.to_wire()
        waiting = by_part.get(part.part_id)
        if part.artifact_ref is None and waiting:
            upload = waiting.popleft()
            wire["artifactRef"] = dict(upload.artifact_ref or {})
            wire.setdefault("contentType", upload.mime_type)
        wire_parts.append(wire)
    for waiting in by_part.values():
        for upload in waiting:
            extra: dict[str, Any] = {
                "contentType": upload.mime_type,
                "artifactRef": upload.artifact_ref,
            }
            if upload.part_id is not None:
                extra["partId"] = upload.part_id
            wire_parts.append(extra)
    return wire_parts


def _upload_session(
    service: TaskService, principal: Principal, agent: AgentRecord, session_id: str
) -> tuple[UploadSession, list[UploadRecord]]:
    session = service.uploads.session(session_id)
    if session is None or session.owner_id != principal.user_id:
        raise BackendError(
            404,
            errors.UPLOAD_NOT_FOUND,
            f"Unknown uploadSessionId {session_id!r}: upload the files with "
            "/api/v1/files/request-upload first (as the same user).",
        )
    if session.agent_name != agent.agent_name or session.environment != agent.environment:
        raise errors.invalid_params(
            f"Upload session {session_id!r} was opened for agent {session.agent_name!r}, "
            f"not {agent.agent_name!r}: upload the files again for this agent."
        )
    if session.used:
        raise errors.conflict(
            f"Upload session {session_id!r} was already used by task {session.task_id}: "
            "each upload session feeds one task; upload the files again."
        )
    return session, service.uploads.session_uploads(session_id)


def build_task(
    service: TaskService,
    principal: Principal,
    agent: AgentRecord,
    request: SendMessage,
    *,
    instance_id: str | None,
) -> TaskRecord:
    """Validate ``request`` against the agent's card and store the new task: ``submitted``
    to ``instance_id`` when one was chosen, else ``queued``.

    Raises invalid-params / upload errors before anything is stored.
    """
    params = request.params
    card = service.card_of(agent)
    check_against_card(card, request)
    session: UploadSession | None = None
    parts_wire: list[dict[str, Any]]
    if params.upload_session_id is not None:
        session, uploads = _upload_session(service, principal, agent, params.upload_session_id)
        parts_wire = attach_uploads(params.request_parts, uploads)
    else:
        parts_wire = [p.to_wire() for p in params.request_parts]
    kind = request.task_kind
    has_stream = params.stream
    if has_stream is None:
        # A card that declares streams (or a pipe) streams unless the caller says no.
        has_stream = bool(card.streams) or kind == TASK_KIND_PIPE
    max_running = (
        agent.scaling.max_running_time_sec or service.settings.default_max_running_time_seconds
    )
    now = service.now_ms()
    expires = None
    if instance_id is not None and kind == TASK_KIND_PIPE and params.duration is not None:
        expires = now + params.duration * 60_000
    record = TaskRecord(
        task_id=session.task_id if session is not None else new_task_id(),
        agent_name=agent.agent_name,
        agent_id=agent.agent_id,
        agent_org_id=agent.org_id,
        org_id=principal.org_id,
        owner_id=principal.user_id,
        caller_claims=caller_claims(principal),
        billing_mode=agent.billing_mode,
        environment=agent.environment,
        state=STATE_QUEUED if instance_id is None else STATE_SUBMITTED,
        task_kind=kind,
        has_stream=has_stream,
        request_parts=parts_wire,
        protocol_version=PROTOCOL_VERSION,
        max_running_ms=int(max_running) * 1000,
        created_ms=now,
        updated_ms=now,
        duration=params.duration,
        consumer_public_key=params.consumer_public_key,
        idempotency_key=params.idempotency_key,
        upload_session_id=params.upload_session_id,
        fingerprint=request.fingerprint,
        instance_id=instance_id,
        dispatched_ms=None if instance_id is None else now,
        duration_expires_at_ms=expires,
    )
    if session is None:
        _insert(service, record)
        return record
    with service.ctx.db.transaction():
        if not service.uploads.claim_session(session.session_id):
            raise errors.conflict(f"Upload session {session.session_id!r} was already used.")
        _insert(service, record)
    return record


def _insert(service: TaskService, record: TaskRecord) -> None:
    if service.store.insert(record) is None:
        raise errors.conflict(
            f"idempotencyKey {record.idempotency_key!r} is already used by another task."
        )
