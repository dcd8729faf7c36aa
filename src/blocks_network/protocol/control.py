"""Control messages (§3.1): what the backend publishes on ``agent.{agentId}.control``.

``parse_control_message`` turns a received message into one of the typed messages below,
returns None for a type it does not know (forward compatibility) and raises ProtocolError for a
known type with a bad shape. The error carries ``task_id`` when it could be read, so the agent
can still answer a broken StartTask with ``terminal failed invalid_start_task``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

from ._fields import (
    as_object,
    check_choice,
    expect_type,
    message_context,
    opt_bool,
    opt_number,
    opt_object,
    opt_str,
    put,
    req_choice,
    req_str,
)
from .constants import (
    ANONYMOUS_OWNER_ID,
    ENVIRONMENTS,
    PIPE_DURATION_MAX_MINUTES,
    PIPE_DURATION_MIN_MINUTES,
    PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
    TASK_KIND_PIPE,
    TASK_KINDS,
    Environment,
    TaskKind,
)
from .parts import RequestPart, parse_request_parts

__all__ = [
    "CancelTask",
    "ControlMessage",
    "ExpireTask",
    "PauseTask",
    "ResumeTask",
    "RetryTask",
    "StartTask",
    "SwitchEnvironment",
    "TerminateTask",
    "broadcast_control_meta",
    "control_filter_expression",
    "is_broadcast_meta",
    "is_supported_protocol_version",
    "parse_control_message",
    "targeted_control_meta",
]

_META_INSTANCE: Final = "instance"
_META_BROADCAST: Final = "broadcast"


def is_supported_protocol_version(version: str | None) -> bool:
    """True if a message pinned to ``version`` may be handled (a missing version is accepted)."""
    return version is None or version in SUPPORTED_PROTOCOL_VERSIONS


def targeted_control_meta(instance_id: str) -> dict[str, str]:
    """PubNub meta that delivers a control message to one instance only."""
    return {_META_INSTANCE: instance_id}


def broadcast_control_meta() -> dict[str, str]:
    """PubNub meta that lets any instance of the agent take a control message."""
    return {_META_BROADCAST: "true"}


def control_filter_expression(instance_id: str) -> str:
    """The subscribe filter an instance sets on its control client."""
    return f"meta.{_META_INSTANCE} == '{instance_id}' || meta.{_META_BROADCAST} == \"true\""


def is_broadcast_meta(meta: object) -> bool:
    """True if PubNub ``meta`` marks a broadcast (any truthy ``broadcast`` value, per spec)."""
    return isinstance(meta, Mapping) and bool(meta.get(_META_BROADCAST))


@dataclass(frozen=True)
class StartTask:
    """Start a task on an agent instance. Every §3.1 field; absent optionals are None."""

    TYPE: ClassVar[str] = "StartTask"

    task_id: str
    request_parts: tuple[RequestPart, ...] = ()
    agent_name: str | None = None
    owner_id: str | None = None
    org_id: str | None = None
    caller_claims: Mapping[str, Any] | None = None
    request_summary: Mapping[str, Any] | None = None
    task_kind: TaskKind = "request"
    duration: float | None = None
    """Pipe duration in minutes (validated by ``pipe_problem``, not by parsing)."""
    duration_expires_at_ms: float | None = None
    consumer_public_key: str | None = None
    has_stream: bool = False
    write_token: str | None = None
    control_token: str | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> StartTask:
        """Parse a StartTask; raises ProtocolError (with ``task_id`` when readable)."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        task_id = req_str(obj, "taskId", cls.TYPE)
        w = cls.TYPE
        with message_context(cls.TYPE, task_id):
            kind = obj.get("taskKind")
            return cls(
                task_id=task_id,
                request_parts=parse_request_parts(obj.get("requestParts"), f"{w}.requestParts"),
                agent_name=opt_str(obj, "agentName", w),
                owner_id=opt_str(obj, "ownerId", w),
                org_id=opt_str(obj, "orgId", w),
                caller_claims=opt_object(obj, "callerClaims", w),
                request_summary=opt_object(obj, "requestSummary", w),
                task_kind="request" if kind is None else req_choice(obj, "taskKind", w, TASK_KINDS),
                duration=opt_number(obj, "duration", w),
                duration_expires_at_ms=opt_number(obj, "durationExpiresAtMs", w),
                consumer_public_key=opt_str(obj, "consumerPublicKey", w),
                has_stream=opt_bool(obj, "hasStream", w, False),
                write_token=opt_str(obj, "writeToken", w),
                control_token=opt_str(obj, "controlToken", w),
                protocol_version=opt_str(obj, "protocolVersion", w),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object (absent optionals omitted; taskKind/hasStream always set)."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id}
        put(wire, "protocolVersion", self.protocol_version)
        put(wire, "agentName", self.agent_name)
        put(wire, "ownerId", self.owner_id)
        put(wire, "orgId", self.org_id)
        wire["requestParts"] = [p.to_wire() for p in self.request_parts]
        put(wire, "callerClaims", None if self.caller_claims is None else dict(self.caller_claims))
        put(
            wire,
            "requestSummary",
            None if self.request_summary is None else dict(self.request_summary),
        )
        wire["taskKind"] = self.task_kind
        put(wire, "duration", self.duration)
        put(wire, "durationExpiresAtMs", self.duration_expires_at_ms)
        put(wire, "consumerPublicKey", self.consumer_public_key)
        wire["hasStream"] = self.has_stream
        put(wire, "writeToken", self.write_token)
        put(wire, "controlToken", self.control_token)
        return wire

    @property
    def resolved_owner_id(self) -> str:
        """``ownerId`` if non-empty, else ``callerClaims.sub`` if a non-empty string, else
        ``"anonymous"``."""
        if self.owner_id:
            return self.owner_id
        sub = None if self.caller_claims is None else self.caller_claims.get("sub")
        if isinstance(sub, str) and sub:
            return sub
        return ANONYMOUS_OWNER_ID

    @property
    def resolved_org_id(self) -> str:
        """The task channel's org: ``orgId`` if non-empty, else the resolved owner id."""
        return self.org_id or self.resolved_owner_id

    def without_tokens(self) -> StartTask:
        """Return a copy without ``writeToken``/``controlToken`` (what a handler may see)."""
        return replace(self, write_token=None, control_token=None)

    def pipe_problem(self) -> str | None:
        """For a pipe task, say why its duration fields are unusable; None when they are fine.

        ``duration`` must be an integer-valued number in 1..43200 and ``durationExpiresAtMs`` a
        number > 0. Request tasks always return None.
        """
        if self.task_kind != TASK_KIND_PIPE:
            return None
        d = self.duration
        if d is None or d != int(d):
            return "pipe task needs an integer duration in minutes"
        if not PIPE_DURATION_MIN_MINUTES <= d <= PIPE_DURATION_MAX_MINUTES:
            return (
                f"pipe duration must be {PIPE_DURATION_MIN_MINUTES}.."
                f"{PIPE_DURATION_MAX_MINUTES} minutes, got {d}"
            )
        if self.duration_expires_at_ms is None or self.duration_expires_at_ms <= 0:
            return "pipe task needs durationExpiresAtMs > 0"
        return None


_C = TypeVar("_C", bound="_TaskControl")


@dataclass(frozen=True)
class _TaskControl:
    """Shape shared by PauseTask/ResumeTask/RetryTask/TerminateTask: ``{taskId, caller?}``."""

    TYPE: ClassVar[str] = ""

    task_id: str
    caller: str | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls: type[_C], value: object) -> _C:
        """Parse this message type; raises ProtocolError on a bad shape."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        task_id = req_str(obj, "taskId", cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id=task_id,
                caller=opt_str(obj, "caller", cls.TYPE),
                protocol_version=opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id}
        put(wire, "caller", self.caller)
        put(wire, "protocolVersion", self.protocol_version)
        return wire


@dataclass(frozen=True)
class PauseTask(_TaskControl):
    """Pause request; the agent only announces ``system status:"paused"``."""

    TYPE: ClassVar[str] = "PauseTask"


@dataclass(frozen=True)
class ResumeTask(_TaskControl):
    """Resume request; the agent only announces ``system status:"resumed"``."""

    TYPE: ClassVar[str] = "ResumeTask"


@dataclass(frozen=True)
class RetryTask(_TaskControl):
    """Retry request (the reference agent treats it as a logged no-op)."""

    TYPE: ClassVar[str] = "RetryTask"


@dataclass(frozen=True)
class TerminateTask(_TaskControl):
    """Hard stop: terminal ``canceled`` with ``reason:"terminated"``."""

    TYPE: ClassVar[str] = "TerminateTask"


@dataclass(frozen=True)
class CancelTask:
    """Cooperative cancel: ``{taskId, reason?, caller?}``."""

    TYPE: ClassVar[str] = "CancelTask"

    task_id: str
    reason: str | None = None
    caller: str | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> CancelTask:
        """Parse a CancelTask; raises ProtocolError on a bad shape."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        task_id = req_str(obj, "taskId", cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id=task_id,
                reason=opt_str(obj, "reason", cls.TYPE),
                caller=opt_str(obj, "caller", cls.TYPE),
                protocol_version=opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id}
        put(wire, "reason", self.reason)
        put(wire, "caller", self.caller)
        put(wire, "protocolVersion", self.protocol_version)
        return wire


@dataclass(frozen=True)
class ExpireTask:
    """A pipe task ran past its duration: ``{taskId, agentName?, reason?}``."""

    TYPE: ClassVar[str] = "ExpireTask"

    task_id: str
    agent_name: str | None = None
    reason: str | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> ExpireTask:
        """Parse an ExpireTask; raises ProtocolError on a bad shape."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        task_id = req_str(obj, "taskId", cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id=task_id,
                agent_name=opt_str(obj, "agentName", cls.TYPE),
                reason=opt_str(obj, "reason", cls.TYPE),
                protocol_version=opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id}
        put(wire, "agentName", self.agent_name)
        put(wire, "reason", self.reason)
        put(wire, "protocolVersion", self.protocol_version)
        return wire


@dataclass(frozen=True)
class SwitchEnvironment:
    """Move a running agent to the other keyset: ``{environment, pamToken}`` (no taskId)."""

    TYPE: ClassVar[str] = "SwitchEnvironment"

    environment: Environment
    pam_token: str
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> SwitchEnvironment:
        """Parse; raises ProtocolError for an unknown environment or a missing/empty token."""
        obj = as_object(value, cls.TYPE)
        expect_type(obj, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, None):
            return cls(
                environment=req_choice(obj, "environment", cls.TYPE, ENVIRONMENTS),
                pam_token=req_str(obj, "pamToken", cls.TYPE),
                protocol_version=opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        check_choice(self.environment, "environment", self.TYPE, ENVIRONMENTS)
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "environment": self.environment,
            "pamToken": self.pam_token,
        }
        put(wire, "protocolVersion", self.protocol_version)
        return wire


ControlMessage: TypeAlias = (
    StartTask
    | CancelTask
    | ExpireTask
    | PauseTask
    | ResumeTask
    | RetryTask
    | TerminateTask
    | SwitchEnvironment
)

_PARSERS: Final[dict[str, Callable[[object], ControlMessage]]] = {
    StartTask.TYPE: StartTask.from_wire,
    CancelTask.TYPE: CancelTask.from_wire,
    ExpireTask.TYPE: ExpireTask.from_wire,
    PauseTask.TYPE: PauseTask.from_wire,
    ResumeTask.TYPE: ResumeTask.from_wire,
    RetryTask.TYPE: RetryTask.from_wire,
    TerminateTask.TYPE: TerminateTask.from_wire,
    SwitchEnvironment.TYPE: SwitchEnvironment.from_wire,
}


def parse_control_message(value: object) -> ControlMessage | None:
    """Parse a control-channel message.

    Returns None when ``type`` is missing or unknown (to be ignored). Raises ProtocolError when
    ``value`` is not an object or a known type has a bad shape.
    """
    obj = as_object(value, "control message")
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    return None if parser is None else parser(obj)
