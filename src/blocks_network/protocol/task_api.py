"""Params and results of the task RPC methods and the task-read-token endpoints (§4, §5.4-5.5).

``SendMessageParams.from_wire`` enforces the cross-field rules the spec puts on callers (a
pipe task needs an integer duration in 1..43200 minutes; a request task takes none), so the
backend can answer -32602 with the message as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._fields import (
    as_object,
    opt_bool,
    opt_choice,
    opt_int,
    opt_object,
    opt_str,
    put,
    req_choice,
    req_int,
    req_str,
)
from .constants import (
    BILLING_MODES,
    PIPE_DURATION_MAX_MINUTES,
    PIPE_DURATION_MIN_MINUTES,
    TASK_KIND_PIPE,
    TASK_KINDS,
    TASK_READ_TOKEN_ROLE_CONSUMER,
    TASK_READ_TOKEN_ROLES,
    TERMINAL_STATES,
    BillingMode,
    TaskKind,
)
from .errors import BILLING_MODE_MISMATCH, ProtocolError
from .parts import RequestPart, parse_request_parts
from .rpc import RpcErrorData

__all__ = [
    "AnonTaskReadTokenRequest",
    "SendMessageParams",
    "SendMessageResult",
    "TaskIdParams",
    "TaskInfo",
    "TaskReadTokenRequest",
    "TaskReadTokenResponse",
    "billing_mode_mismatch_data",
    "parse_billing_mode_mismatch",
]

_W_SEND: Final = "SendMessage.params"
_TASK_INFO_KEYS: Final = frozenset(
    {"taskId", "state", "agentName", "owner", "createdTime", "updatedTime"}
)


@dataclass(frozen=True)
class SendMessageParams:
    """``SendMessage`` params; the ``extensions.blocks.*`` fields are flattened here."""

    agent_name: str
    billing_mode: BillingMode
    request_parts: tuple[RequestPart, ...] = ()
    owner_id: str = ""
    idempotency_key: str | None = None
    upload_session_id: str | None = None
    stream: bool | None = None
    task_kind: TaskKind | None = None
    duration: int | None = None
    consumer_public_key: str | None = None
    push_notification_config: Mapping[str, Any] | None = None
    retry_policy: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.task_kind == TASK_KIND_PIPE:
            d = self.duration
            if d is None or not PIPE_DURATION_MIN_MINUTES <= d <= PIPE_DURATION_MAX_MINUTES:
                raise ProtocolError(
                    f"{_W_SEND}.extensions.blocks.duration: a pipe task needs an integer "
                    f"duration of {PIPE_DURATION_MIN_MINUTES}..{PIPE_DURATION_MAX_MINUTES} "
                    f"minutes, got {d!r}"
                )
        elif self.duration is not None:
            raise ProtocolError(
                f"{_W_SEND}.extensions.blocks.duration: only pipe tasks take a duration; "
                "set taskKind to 'pipe' or drop the duration"
            )

    @classmethod
    def from_wire(cls, value: object) -> SendMessageParams:
        """Parse SendMessage params; raises ProtocolError (answer -32602) on a bad shape."""
        w = _W_SEND
        obj = as_object(value, w)
        extensions = opt_object(obj, "extensions", w) or {}
        blocks = opt_object(extensions, "blocks", f"{w}.extensions") or {}
        wb = f"{w}.extensions.blocks"
        if obj.get("requestParts") is None:
            raise ProtocolError(f"{w}.requestParts: missing required field")
        return cls(
            agent_name=req_str(obj, "agentName", w),
            billing_mode=req_choice(obj, "billingMode", w, BILLING_MODES),
            request_parts=parse_request_parts(obj["requestParts"], f"{w}.requestParts"),
            owner_id=opt_str(obj, "ownerId", w) or "",
            idempotency_key=opt_str(obj, "idempotencyKey", w),
            upload_session_id=opt_str(obj, "uploadSessionId", w),
            stream=None if blocks.get("stream") is None else opt_bool(blocks, "stream", wb, False),
            task_kind=opt_choice(blocks, "taskKind", wb, TASK_KINDS),
            duration=opt_int(blocks, "duration", wb),
            consumer_public_key=opt_str(blocks, "consumerPublicKey", wb),
            push_notification_config=opt_object(obj, "pushNotificationConfig", w),
            retry_policy=opt_object(obj, "retryPolicy", w),
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the params object (``extensions`` only when a blocks field is set)."""
        wire: dict[str, Any] = {
            "agentName": self.agent_name,
            "billingMode": self.billing_mode,
            "requestParts": [p.to_wire() for p in self.request_parts],
            "ownerId": self.owner_id,
        }
        put(wire, "idempotencyKey", self.idempotency_key)
        put(wire, "uploadSessionId", self.upload_session_id)
        blocks: dict[str, Any] = {}
        put(blocks, "stream", self.stream)
        put(blocks, "taskKind", self.task_kind)
        put(blocks, "duration", self.duration)
        put(blocks, "consumerPublicKey", self.consumer_public_key)
        if blocks:
            wire["extensions"] = {"blocks": blocks}
        if self.push_notification_config is not None:
            wire["pushNotificationConfig"] = dict(self.push_notification_config)
        if self.retry_policy is not None:
            wire["retryPolicy"] = dict(self.retry_policy)
        return wire


@dataclass(frozen=True)
class SendMessageResult:
    """``SendMessage`` result; ``extensions.blocks.*`` flattened (read token, status channel,
    optional keyset override)."""

    task_id: str
    state: str
    idempotent: bool = False
    queued: bool = False
    push_config_id: str | None = None
    read_token: str | None = None
    status_channel: str | None = None
    subscribe_key: str | None = None
    publish_key: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True if ``state`` is completed, failed or canceled."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_wire(cls, value: object) -> SendMessageResult:
        """Parse the ``result`` member; raises ProtocolError on a bad shape."""
        w = "SendMessage.result"
        obj = as_object(value, w)
        extensions = opt_object(obj, "extensions", w) or {}
        wb = f"{w}.extensions.blocks"
        blocks = opt_object(extensions, "blocks", f"{w}.extensions") or {}
        channels = opt_object(blocks, "streamChannels", wb) or {}
        return cls(
            task_id=req_str(obj, "taskId", w),
            state=req_str(obj, "state", w),
            idempotent=opt_bool(obj, "idempotent", w, False),
            queued=opt_bool(obj, "queued", w, False),
            push_config_id=opt_str(obj, "pushConfigId", w),
            read_token=opt_str(blocks, "readToken", wb),
            status_channel=opt_str(channels, "status", f"{wb}.streamChannels"),
            subscribe_key=opt_str(blocks, "subscribeKey", wb),
            publish_key=opt_str(blocks, "publishKey", wb),
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the ``result`` member."""
        wire: dict[str, Any] = {
            "taskId": self.task_id,
            "state": self.state,
            "idempotent": self.idempotent,
            "queued": self.queued,
        }
        put(wire, "pushConfigId", self.push_config_id)
        blocks: dict[str, Any] = {}
        put(blocks, "readToken", self.read_token)
        if self.status_channel is not None:
            blocks["streamChannels"] = {"status": self.status_channel}
        put(blocks, "subscribeKey", self.subscribe_key)
        put(blocks, "publishKey", self.publish_key)
        if blocks:
            wire["extensions"] = {"blocks": blocks}
        return wire


@dataclass(frozen=True)
class TaskIdParams:
    """``{taskId}``: params of GetTask, CancelTask, PauseTask, ResumeTask, RetryTask,
    TerminateTask."""

    task_id: str

    @classmethod
    def from_wire(cls, value: object, method: str = "task method") -> TaskIdParams:
        """Parse; raises ProtocolError naming ``method`` when ``taskId`` is missing/ill-typed."""
        return cls(req_str(as_object(value, f"{method}.params"), "taskId", f"{method}.params"))

    def to_wire(self) -> dict[str, Any]:
        """Return the params object."""
        return {"taskId": self.task_id}


@dataclass(frozen=True)
class TaskInfo:
    """A task as GetTask/ListTasks report it; unnamed keys are kept in ``extra``."""

    task_id: str
    state: str
    agent_name: str | None = None
    owner: str | None = None
    created_time: str | int | None = None
    updated_time: str | int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, value: object) -> TaskInfo:
        """Parse ``{task: {...}}`` or the bare task object; raises ProtocolError."""
        obj = as_object(value, "task")
        if isinstance(obj.get("task"), Mapping):
            obj = obj["task"]
        w = "task"
        times: dict[str, str | int | None] = {}
        for key in ("createdTime", "updatedTime"):
            t = obj.get(key)
            if t is not None and (isinstance(t, bool) or not isinstance(t, (str, int))):
                raise ProtocolError(f"{w}.{key}: expected a string or an integer")
            times[key] = t
        return cls(
            task_id=req_str(obj, "taskId", w),
            state=req_str(obj, "state", w),
            agent_name=opt_str(obj, "agentName", w),
            owner=opt_str(obj, "owner", w),
            created_time=times["createdTime"],
            updated_time=times["updatedTime"],
            extra={k: v for k, v in obj.items() if k not in _TASK_INFO_KEYS},
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the bare task object (wrap it as ``{"task": ...}`` for GetTask)."""
        wire: dict[str, Any] = dict(self.extra)
        wire.update(taskId=self.task_id, state=self.state)
        put(wire, "agentName", self.agent_name)
        put(wire, "owner", self.owner)
        put(wire, "createdTime", self.created_time)
        put(wire, "updatedTime", self.updated_time)
        return wire


@dataclass(frozen=True)
class TaskReadTokenRequest:
    """Body of ``POST /api/v1/auth/task-read-token``: ``{taskId, role}``."""

    task_id: str
    role: str = TASK_READ_TOKEN_ROLE_CONSUMER

    @classmethod
    def from_wire(cls, value: object) -> TaskReadTokenRequest:
        """Parse; ``role`` defaults to consumer and must be consumer or provider."""
        w = "task-read-token request"
        obj = as_object(value, w)
        role = opt_choice(obj, "role", w, TASK_READ_TOKEN_ROLES)
        return cls(req_str(obj, "taskId", w), role or TASK_READ_TOKEN_ROLE_CONSUMER)

    def to_wire(self) -> dict[str, Any]:
        """Return the request body."""
        return {"taskId": self.task_id, "role": self.role}


@dataclass(frozen=True)
class AnonTaskReadTokenRequest:
    """Body of ``POST /api/v1/auth/anon-task-read-token``: ``{taskId, fingerprint}``."""

    task_id: str
    fingerprint: str

    @classmethod
    def from_wire(cls, value: object) -> AnonTaskReadTokenRequest:
        """Parse; raises ProtocolError on a bad shape."""
        w = "anon-task-read-token request"
        obj = as_object(value, w)
        return cls(req_str(obj, "taskId", w), req_str(obj, "fingerprint", w))

    def to_wire(self) -> dict[str, Any]:
        """Return the request body."""
        return {"taskId": self.task_id, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class TaskReadTokenResponse:
    """``{pamToken, channel, ttlMinutes}``: a read token for the task channel (T4)."""

    pam_token: str
    channel: str
    ttl_minutes: int

    @classmethod
    def from_wire(cls, value: object) -> TaskReadTokenResponse:
        """Parse; raises ProtocolError on a bad shape."""
        w = "task-read-token response"
        obj = as_object(value, w)
        return cls(
            pam_token=req_str(obj, "pamToken", w),
            channel=req_str(obj, "channel", w),
            ttl_minutes=req_int(obj, "ttlMinutes", w, minimum=1),
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the response body."""
        return {"pamToken": self.pam_token, "channel": self.channel, "ttlMinutes": self.ttl_minutes}


def billing_mode_mismatch_data(expected: BillingMode, got: BillingMode) -> RpcErrorData:
    """The ``error.data`` of a BillingModeMismatch answer (details ``{expected, got}``)."""
    return RpcErrorData(
        code=BILLING_MODE_MISMATCH,
        message=(
            f"agent is registered with billing mode '{expected}' but the request used "
            f"'{got}'; create the TaskClient with billing_mode='{expected}'"
        ),
        details={"expected": expected, "got": got},
    )


def parse_billing_mode_mismatch(
    data: RpcErrorData | None,
) -> tuple[BillingMode, BillingMode] | None:
    """Return ``(expected, got)`` if ``data`` is a well-formed BillingModeMismatch, else None."""
    if data is None or data.code != BILLING_MODE_MISMATCH or data.details is None:
        return None
    try:
        return (
            req_choice(data.details, "expected", "details", BILLING_MODES),
            req_choice(data.details, "got", "details", BILLING_MODES),
        )
    except ProtocolError:
        return None
