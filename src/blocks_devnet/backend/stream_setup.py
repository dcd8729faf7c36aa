"""The stream-setup hook (protocol.md §8.2): the server side of ``setup.{orgId}.{taskId}``.

The hosted network runs a PubNub Function on that channel; here a publish interceptor of
the realtime server does the same job. A ``stream_setup`` publish (already checked by
Access Manager: only the task's write token may publish there) is never stored. It is
answered with HTTP 403 whose body ``{"message": <answer>, "status": 403}`` carries:

- success ``{"ok": true, "streamSetupResponse": {..., "token": <T7a>}}`` after minting the
  writer token (T7a) and the consumer's token (T7c), recording the stream, and publishing
  the ``progress`` / ``streamEvent: "stream_started"`` event on the task channel;
- failure ``{"ok": false, "error": {code, message}}``.

Phases: ``embedded`` mints both tokens and announces; ``token_request`` (external stream,
step 1) only mints the writer token; ``activate`` (external step 2, or another task joining
a shared stream) mints the consumer token, announces, and returns no writer token.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web

from blocks_devnet.backend import grants
from blocks_devnet.backend.context import BackendContext
from blocks_devnet.backend.tasks.tokens import StreamRecord
from blocks_devnet.realtime.http import RealtimeRequest, json_response
from blocks_network.protocol.channels import parse_setup_channel, stream_channel
from blocks_network.protocol.constants import (
    DEFAULT_DECLARED_STREAM,
    PIPE_DURATION_MAX_MINUTES,
    TASK_KIND_REQUEST,
    StreamSetupPhase,
)
from blocks_network.protocol.errors import (
    STREAM_SETUP_FAILED_PRECONDITION,
    STREAM_SETUP_INVALID_ARGUMENT,
    STREAM_SETUP_PERMISSION_DENIED,
    ProtocolError,
)
from blocks_network.protocol.stream_setup import (
    StreamAnnouncement,
    StreamSetup,
    StreamSetupFailure,
    StreamSetupOk,
    StreamSetupResult,
    StreamStarted,
    stream_setup_rejection_body,
)

logger = logging.getLogger(__name__)

_PHASE_EMBEDDED: Final = "embedded"
_PHASE_TOKEN_REQUEST: Final = "token_request"
_PHASE_ACTIVATE: Final = "activate"
_OUTBOUND = "outbound"
_DEDICATED = "dedicated"
_SHARED = "shared"


class StreamSetupHook:
    """A realtime publish interceptor answering ``stream_setup`` on setup channels."""

    def __init__(self, ctx: BackendContext) -> None:
        self._ctx = ctx

    def __call__(self, req: RealtimeRequest, channel: str, message: Any) -> web.Response | None:
        target = parse_setup_channel(channel)
        if target is None:
            return None
        try:
            result = self._answer(req, target.org_id, target.task_id, message)
        except ProtocolError as exc:
            result = StreamSetupFailure(STREAM_SETUP_INVALID_ARGUMENT, str(exc))
        if isinstance(result, StreamSetupFailure):
            logger.info("stream setup on %s refused: %s", channel, result.message)
        return json_response(stream_setup_rejection_body(result), status=403)

    def _answer(
        self, req: RealtimeRequest, org_id: str, task_id: str, message: Any
    ) -> StreamSetupResult:
        setup = StreamSetup.from_wire(message)
        if setup.task_id != task_id or setup.org_id != org_id:
            return _invalid("taskId and orgId must match the setup channel's")
        service = self._ctx.tasks
        record = service.store.get(task_id)
        if record is None or record.org_id != org_id:
            return StreamSetupFailure(
                STREAM_SETUP_FAILED_PRECONDITION, f"task {task_id} is not known"
            )
        if service.subscribe_key_of(record.environment) != req.keyset.subscribe_key:
            return _denied(f"task {task_id} runs on the other keyset")
        if not req.signed and req.uuid != record.instance_id:
            return _denied("only the instance running the task may open its streams")
        if record.terminal:
            return StreamSetupFailure(
                STREAM_SETUP_FAILED_PRECONDITION, f"task {task_id} already ended ({record.state})"
            )
        if not record.has_stream:
            return StreamSetupFailure(
                STREAM_SETUP_FAILED_PRECONDITION,
                f"streaming was not negotiated for task {task_id}: the consumer must send it "
                "with stream enabled",
            )
        if setup.agent_name != record.agent_name:
            return _invalid(f"agentName must be {record.agent_name!r}, the task's agent")
        if setup.channel != stream_channel(setup.agent_name, setup.stream_id):
            return _invalid("channel must be stream.{agentName}.{streamId}")
        if record.task_kind == TASK_KIND_REQUEST and (
            setup.direction != _OUTBOUND or setup.affinity != _DEDICATED
        ):
            return _invalid("request tasks may open only outbound, dedicated streams")
        return self._open(record.environment, setup)

    def _open(self, environment: str, setup: StreamSetup) -> StreamSetupOk:
        service = self._ctx.tasks
        keyset = self._ctx.keyset_for_environment(environment)
        phase: StreamSetupPhase = setup.phase or _PHASE_EMBEDDED
        ttl = max(1, min(setup.duration_minutes, PIPE_DURATION_MAX_MINUTES))
        writer: str | None = None
        if phase in (_PHASE_EMBEDDED, _PHASE_TOKEN_REQUEST):
            if setup.affinity == _SHARED:
                writer = service.tokens.stream_writer_token(keyset.subscribe_key, setup.channel)
            if writer is None:
                writer = grants.stream_token(keyset, setup.channel, write=True, ttl_minutes=ttl)
        reader: str | None = None
        if phase in (_PHASE_EMBEDDED, _PHASE_ACTIVATE):
            # The consumer writes too when the agent reads (inbound or bidirectional).
            reader = grants.stream_token(
                keyset, setup.channel, write=setup.direction != _OUTBOUND, ttl_minutes=ttl
            )
        service.tokens.record_stream(
            StreamRecord(
                task_id=setup.task_id,
                stream_id=setup.stream_id,
                subscribe_key=keyset.subscribe_key,
                channel=setup.channel,
                direction=setup.direction,
                format=setup.format,
                affinity=setup.affinity,
                ttl_minutes=ttl,
                declared_stream=setup.declared_stream,
                metadata=None if setup.metadata is None else dict(setup.metadata),
                writer_token=writer,
                reader_token=reader,
            ),
            service.now_ms(),
        )
        if reader is not None:
            record = service.store.get(setup.task_id)
            assert record is not None  # checked by the caller on this same loop turn
            announcement = StreamStarted(
                task_id=setup.task_id,
                streams={
                    setup.stream_id: StreamAnnouncement(
                        channel=setup.channel,
                        token=reader,
                        direction=setup.direction,
                        format=setup.format,
                        affinity=setup.affinity,
                        metadata=setup.metadata,
                        token_ttl_minutes=ttl,
                    )
                },
                declared_stream=setup.declared_stream or DEFAULT_DECLARED_STREAM,
                protocol_version=record.protocol_version,
            )
            service.publish_event(record, announcement.to_wire())
        return StreamSetupOk(
            task_id=setup.task_id,
            stream_id=setup.stream_id,
            channel=setup.channel,
            direction=setup.direction,
            phase=phase,
            token_ttl_minutes=ttl,
            token=None if phase == _PHASE_ACTIVATE else writer,
        )


def _invalid(message: str) -> StreamSetupFailure:
    return StreamSetupFailure(STREAM_SETUP_INVALID_ARGUMENT, message)


def _denied(message: str) -> StreamSetupFailure:
    return StreamSetupFailure(STREAM_SETUP_PERMISSION_DENIED, message)


def install(ctx: BackendContext) -> None:
    """Answer stream-setup publishes on ``ctx``'s realtime server."""
    ctx.realtime.interceptors.append(StreamSetupHook(ctx))
