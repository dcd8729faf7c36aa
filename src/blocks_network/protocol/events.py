"""Task-channel events (§3.2): what travels on ``u.{orgId}.{taskId}``.

``parse_task_event`` returns a typed event, None for a type (or progress sub-event) it does not
know, and raises ProtocolError for a known type with a bad shape. Events built here carry
``protocolVersion`` unless it is set to None (parsed events keep what they arrived with).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

from ._fields import (
    as_object,
    expect_type,
    message_context,
    opt_number,
    opt_str,
    put,
    req_int,
    req_str,
)
from .artifacts import ArtifactRef, parse_artifact_ref
from .constants import PROTOCOL_VERSION, TASK_STATE_RUNNING, TERMINAL_STATES
from .errors import ProtocolError
from .parts import RequestPart, parse_request_parts
from .stream_setup import StreamStarted

__all__ = [
    "ArtifactEvent",
    "CancelRequested",
    "LogEvent",
    "ProgressMessage",
    "ProgressState",
    "RequestEvent",
    "SystemEvent",
    "TaskEvent",
    "TerminalEvent",
    "parse_task_event",
    "task_event_meta",
]


def task_event_meta(
    agent_name: str, task_id: str, protocol_version: str = PROTOCOL_VERSION
) -> dict[str, str]:
    """PubNub meta attached to task-event publishes by the agent."""
    return {"agentName": agent_name, "taskId": task_id, "protocolVersion": protocol_version}


def _finish(wire: dict[str, Any], pv: str | None) -> dict[str, Any]:
    put(wire, "protocolVersion", pv)
    return wire


def _open(value: object, type_: str, where: str) -> tuple[Any, str]:
    obj = as_object(value, where)
    expect_type(obj, type_, where)
    return obj, req_str(obj, "taskId", where)


@dataclass(frozen=True)
class RequestEvent:
    """``request``: the backend echoes the task's request parts as the first event."""

    TYPE: ClassVar[str] = "request"

    task_id: str
    request_parts: tuple[RequestPart, ...] = ()
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> RequestEvent:
        """Parse; raises ProtocolError on a bad shape."""
        obj, task_id = _open(value, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id=task_id,
                request_parts=parse_request_parts(
                    obj.get("requestParts"), f"{cls.TYPE}.requestParts"
                ),
                protocol_version=opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "taskId": self.task_id,
            "requestParts": [p.to_wire() for p in self.request_parts],
        }
        return _finish(wire, self.protocol_version)


@dataclass(frozen=True)
class ProgressState:
    """``progress`` with a state, e.g. ``{progress: 0, state: "running"}`` at task start."""

    TYPE: ClassVar[str] = "progress"

    task_id: str
    state: str = TASK_STATE_RUNNING
    progress: float | None = 0
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> ProgressState:
        """Parse a ``progress`` carrying ``state``; raises ProtocolError on a bad shape."""
        obj, task_id = _open(value, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id,
                req_str(obj, "state", cls.TYPE),
                opt_number(obj, "progress", cls.TYPE),
                opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id}
        put(wire, "progress", self.progress)
        wire["state"] = self.state
        return _finish(wire, self.protocol_version)


@dataclass(frozen=True)
class _TaskMessage:
    """Shape shared by ``progress`` with ``message`` and ``log``: ``{taskId, message}``."""

    TYPE: ClassVar[str] = ""

    task_id: str
    message: str
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls: type[_M], value: object) -> _M:
        """Parse this event; raises ProtocolError on a bad shape."""
        obj, task_id = _open(value, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id,
                req_str(obj, "message", cls.TYPE, non_empty=False),
                opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id, "message": self.message}
        return _finish(wire, self.protocol_version)


_M = TypeVar("_M", bound=_TaskMessage)


@dataclass(frozen=True)
class ProgressMessage(_TaskMessage):
    """``progress`` with a human status line (``ctx.report_status``)."""

    TYPE: ClassVar[str] = "progress"


def _parse_progress(value: object) -> ProgressState | ProgressMessage | StreamStarted | None:
    w = "progress"
    obj, task_id = _open(value, w, w)
    stream_event = obj.get("streamEvent")
    if stream_event is not None:
        # Unknown stream sub-events are ignored like unknown types.
        return StreamStarted.from_wire(obj) if stream_event == StreamStarted.STREAM_EVENT else None
    if obj.get("message") is not None:
        return ProgressMessage.from_wire(obj)
    if obj.get("state") is not None:
        return ProgressState.from_wire(obj)
    raise ProtocolError(
        f"{w}: needs one of 'message', 'state' or 'streamEvent'", message_type=w, task_id=task_id
    )


@dataclass(frozen=True)
class ArtifactEvent:
    """``artifact``: one result artifact, inline or file."""

    TYPE: ClassVar[str] = "artifact"

    task_id: str
    artifact_ref: ArtifactRef
    output_id: str | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> ArtifactEvent:
        """Parse; raises ProtocolError on a bad shape or unknown artifact kind."""
        obj, task_id = _open(value, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, task_id):
            if obj.get("artifactRef") is None:
                raise ProtocolError(f"{cls.TYPE}.artifactRef: missing required field")
            return cls(
                task_id=task_id,
                artifact_ref=parse_artifact_ref(obj["artifactRef"], f"{cls.TYPE}.artifactRef"),
                output_id=opt_str(obj, "outputId", cls.TYPE),
                protocol_version=opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "taskId": self.task_id,
            "artifactRef": self.artifact_ref.to_wire(),
        }
        put(wire, "outputId", self.output_id)
        return _finish(wire, self.protocol_version)


@dataclass(frozen=True)
class SystemEvent:
    """``system``: e.g. ``status:"paused"`` / ``"resumed"`` / ``"heartbeat"``."""

    TYPE: ClassVar[str] = "system"

    task_id: str
    status: str
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> SystemEvent:
        """Parse; raises ProtocolError on a bad shape."""
        obj, task_id = _open(value, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id,
                req_str(obj, "status", cls.TYPE),
                opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id, "status": self.status}
        return _finish(wire, self.protocol_version)


@dataclass(frozen=True)
class CancelRequested:
    """``cancel_requested``: the backend acknowledged a cooperative cancel at ``ts`` (epoch ms)."""

    TYPE: ClassVar[str] = "cancel_requested"

    task_id: str
    ts: int
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> CancelRequested:
        """Parse; raises ProtocolError on a bad shape."""
        obj, task_id = _open(value, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id,
                req_int(obj, "ts", cls.TYPE, minimum=0),
                opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id, "ts": self.ts}
        return _finish(wire, self.protocol_version)


@dataclass(frozen=True)
class LogEvent(_TaskMessage):
    """``log``: a free-text log line attached to the task."""

    TYPE: ClassVar[str] = "log"


@dataclass(frozen=True)
class TerminalEvent:
    """``terminal``: the task ended in ``completed``, ``failed`` or ``canceled``.

    ``error`` explains a failure, ``reason:"terminated"`` marks TerminateTask, and
    ``completionReason:"duration_expired"`` marks a pipe that reached its deadline.
    """

    TYPE: ClassVar[str] = "terminal"

    task_id: str
    state: str
    error: str | None = None
    reason: str | None = None
    completion_reason: str | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if self.state not in TERMINAL_STATES:
            raise ProtocolError(
                f"terminal.state: must be one of 'canceled', 'completed', 'failed', "
                f"got {self.state!r}",
                message_type=self.TYPE,
                task_id=self.task_id,
            )

    @classmethod
    def from_wire(cls, value: object) -> TerminalEvent:
        """Parse; raises ProtocolError on a bad shape or a non-terminal ``state``."""
        obj, task_id = _open(value, cls.TYPE, cls.TYPE)
        with message_context(cls.TYPE, task_id):
            return cls(
                task_id=task_id,
                state=req_str(obj, "state", cls.TYPE),
                error=opt_str(obj, "error", cls.TYPE),
                reason=opt_str(obj, "reason", cls.TYPE),
                completion_reason=opt_str(obj, "completionReason", cls.TYPE),
                protocol_version=opt_str(obj, "protocolVersion", cls.TYPE),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE, "taskId": self.task_id, "state": self.state}
        put(wire, "error", self.error)
        put(wire, "reason", self.reason)
        put(wire, "completionReason", self.completion_reason)
        return _finish(wire, self.protocol_version)


TaskEvent: TypeAlias = (
    RequestEvent
    | ProgressState
    | ProgressMessage
    | StreamStarted
    | ArtifactEvent
    | SystemEvent
    | CancelRequested
    | LogEvent
    | TerminalEvent
)

_PARSERS: Final[dict[str, Callable[[object], TaskEvent | None]]] = {
    RequestEvent.TYPE: RequestEvent.from_wire,
    ProgressState.TYPE: _parse_progress,
    ArtifactEvent.TYPE: ArtifactEvent.from_wire,
    SystemEvent.TYPE: SystemEvent.from_wire,
    CancelRequested.TYPE: CancelRequested.from_wire,
    LogEvent.TYPE: LogEvent.from_wire,
    TerminalEvent.TYPE: TerminalEvent.from_wire,
}


def parse_task_event(value: object) -> TaskEvent | None:
    """Parse a task-channel message.

    Returns None when ``type`` is missing or unknown, or for a ``progress`` with an unknown
    ``streamEvent``. Raises ProtocolError when ``value`` is not an object or a known event is
    malformed (including a ``terminal`` whose state is not terminal).
    """
    obj = as_object(value, "task event")
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    return None if parser is None else parser(obj)
