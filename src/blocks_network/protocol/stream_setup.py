"""Stream-setup handshake (§8.2) and its announcement on the task channel (§3.2).

The agent publishes ``stream_setup`` on ``setup.{orgId}.{taskId}``; the server side rejects that
publish with HTTP 403 whose body ``{"message": <payload>, "status": 403}`` carries the answer
(``StreamSetupOk`` or ``StreamSetupFailure``), then announces the stream to consumers with a
``progress`` event whose ``streamEvent`` is ``stream_started`` (``StreamStarted``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeAlias

from ._fields import (
    as_object,
    expect_type,
    message_context,
    opt_choice,
    opt_int,
    opt_object,
    opt_str,
    put,
    req_bool,
    req_choice,
    req_int,
    req_object,
    req_str,
    type_name,
)
from .constants import (
    PROTOCOL_VERSION,
    STREAM_AFFINITIES,
    STREAM_DIRECTIONS,
    STREAM_FORMATS,
    STREAM_SETUP_PHASES,
    TASK_KINDS,
    StreamAffinity,
    StreamDirection,
    StreamFormat,
    StreamSetupPhase,
    TaskKind,
)
from .errors import ProtocolError

__all__ = [
    "STREAM_SETUP_REJECTION_STATUS",
    "StreamAnnouncement",
    "StreamSetup",
    "StreamSetupFailure",
    "StreamSetupOk",
    "StreamSetupResult",
    "StreamStarted",
    "invert_direction",
    "parse_stream_setup_rejection",
    "parse_stream_setup_result",
    "stream_setup_rejection_body",
]

logger = logging.getLogger(__name__)

STREAM_SETUP_REJECTION_STATUS: Final = 403

_INVERTED: Final[dict[str, StreamDirection]] = {
    "outbound": "inbound",
    "inbound": "outbound",
    "bidirectional": "bidirectional",
}


def invert_direction(direction: StreamDirection) -> StreamDirection:
    """The consumer's view of an agent-side direction (outbound ↔ inbound)."""
    return _INVERTED[direction]


def _whole_minutes(obj: Mapping[str, Any], key: str, where: str) -> int:
    # The reference SDK may forward a StartTask duration such as 5.0; accept integer values.
    value = obj.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return req_int({key: value}, key, where, minimum=1)


@dataclass(frozen=True)
class StreamSetup:
    """The agent's ``stream_setup`` request (published with store=false)."""

    TYPE: ClassVar[str] = "stream_setup"

    task_id: str
    org_id: str
    agent_name: str
    stream_id: str
    channel: str
    direction: StreamDirection
    task_kind: TaskKind
    duration_minutes: int
    format: StreamFormat
    affinity: StreamAffinity
    declared_stream: str | None = None
    phase: StreamSetupPhase | None = None
    metadata: Mapping[str, Any] | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> StreamSetup:
        """Parse; raises ProtocolError (``affinity`` is required, as the server demands)."""
        w = cls.TYPE
        obj = as_object(value, w)
        expect_type(obj, w, w)
        task_id = req_str(obj, "taskId", w)
        with message_context(w, task_id):
            return cls(
                task_id=task_id,
                org_id=req_str(obj, "orgId", w),
                agent_name=req_str(obj, "agentName", w),
                stream_id=req_str(obj, "streamId", w),
                channel=req_str(obj, "channel", w),
                direction=req_choice(obj, "direction", w, STREAM_DIRECTIONS),
                task_kind=req_choice(obj, "taskKind", w, TASK_KINDS),
                duration_minutes=_whole_minutes(obj, "durationMinutes", w),
                format=req_choice(obj, "format", w, STREAM_FORMATS),
                affinity=req_choice(obj, "affinity", w, STREAM_AFFINITIES),
                declared_stream=opt_str(obj, "declaredStream", w),
                phase=opt_choice(obj, "phase", w, STREAM_SETUP_PHASES),
                metadata=opt_object(obj, "metadata", w),
                protocol_version=opt_str(obj, "protocolVersion", w),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {"type": self.TYPE}
        put(wire, "protocolVersion", self.protocol_version)
        wire.update(
            taskId=self.task_id,
            orgId=self.org_id,
            agentName=self.agent_name,
            streamId=self.stream_id,
            channel=self.channel,
            direction=self.direction,
            taskKind=self.task_kind,
            durationMinutes=self.duration_minutes,
            format=self.format,
            affinity=self.affinity,
        )
        put(wire, "declaredStream", self.declared_stream)
        put(wire, "phase", self.phase)
        put(wire, "metadata", None if self.metadata is None else dict(self.metadata))
        return wire


@dataclass(frozen=True)
class StreamSetupOk:
    """Successful handshake: the writer token (absent for ``activate``) and its TTL."""

    task_id: str
    stream_id: str
    channel: str
    direction: StreamDirection
    phase: StreamSetupPhase
    token_ttl_minutes: int
    token: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """Return the payload ``{"ok": true, "streamSetupResponse": {...}}``."""
        body: dict[str, Any] = {
            "taskId": self.task_id,
            "streamId": self.stream_id,
            "channel": self.channel,
            "direction": self.direction,
            "phase": self.phase,
            "tokenTtlMinutes": self.token_ttl_minutes,
        }
        put(body, "token", self.token)
        return {"ok": True, "streamSetupResponse": body}


@dataclass(frozen=True)
class StreamSetupFailure:
    """Refused handshake: ``{"ok": false, "error": {code, message}}``."""

    code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        """Return the payload."""
        return {"ok": False, "error": {"code": self.code, "message": self.message}}


StreamSetupResult: TypeAlias = StreamSetupOk | StreamSetupFailure


def parse_stream_setup_result(value: object) -> StreamSetupResult:
    """Parse the handshake payload (the ``message`` member of the 403 body).

    Raises ProtocolError when the payload is neither a valid success nor a valid failure.
    """
    w = "streamSetupResult"
    obj = as_object(value, w)
    if not req_bool(obj, "ok", w):
        err = req_object(obj, "error", w)
        return StreamSetupFailure(
            code=req_str(err, "code", f"{w}.error"),
            message=req_str(err, "message", f"{w}.error", non_empty=False),
        )
    body = req_object(obj, "streamSetupResponse", w)
    w = f"{w}.streamSetupResponse"
    return StreamSetupOk(
        task_id=req_str(body, "taskId", w),
        stream_id=req_str(body, "streamId", w),
        channel=req_str(body, "channel", w),
        direction=req_choice(body, "direction", w, STREAM_DIRECTIONS),
        phase=req_choice(body, "phase", w, STREAM_SETUP_PHASES),
        token_ttl_minutes=req_int(body, "tokenTtlMinutes", w, minimum=1),
        token=opt_str(body, "token", w),
    )


def stream_setup_rejection_body(result: StreamSetupResult) -> dict[str, Any]:
    """The HTTP 403 body that carries ``result`` back to the publishing agent."""
    return {"message": result.to_wire(), "status": STREAM_SETUP_REJECTION_STATUS}


def _loads(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"{what}: not valid JSON ({exc})") from exc


def parse_stream_setup_rejection(body: object) -> StreamSetupResult:
    """Parse the 403 body of a rejected ``stream_setup`` publish.

    ``body`` may be the decoded object or its JSON text; its ``message`` may likewise be an
    object or JSON text. Raises ProtocolError if no handshake answer can be found.
    """
    if isinstance(body, (str, bytes)):
        body = _loads(body.decode() if isinstance(body, bytes) else body, "stream setup 403 body")
    obj = as_object(body, "stream setup 403 body")
    message = obj.get("message")
    if isinstance(message, str):
        message = _loads(message, "stream setup 403 body.message")
    if not isinstance(message, Mapping):
        raise ProtocolError(
            "stream setup 403 body.message: expected the handshake answer object, "
            f"got {type_name(message)}; the server did not run the stream-setup handler"
        )
    return parse_stream_setup_result(message)


@dataclass(frozen=True)
class StreamAnnouncement:
    """One entry of ``stream_started.streams``: how a consumer reaches a stream."""

    channel: str
    token: str
    direction: StreamDirection
    format: StreamFormat
    affinity: StreamAffinity
    metadata: Mapping[str, Any] | None = None
    token_ttl_minutes: int | None = None

    @classmethod
    def from_wire(cls, value: object, where: str) -> StreamAnnouncement:
        """Parse one entry; raises ProtocolError on a bad shape or unknown vocabulary."""
        obj = as_object(value, where)
        return cls(
            channel=req_str(obj, "channel", where),
            token=req_str(obj, "token", where),
            direction=req_choice(obj, "direction", where, STREAM_DIRECTIONS),
            format=req_choice(obj, "format", where, STREAM_FORMATS),
            affinity=req_choice(obj, "affinity", where, STREAM_AFFINITIES),
            metadata=opt_object(obj, "metadata", where),
            token_ttl_minutes=opt_int(obj, "tokenTtlMinutes", where),
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {
            "channel": self.channel,
            "token": self.token,
            "direction": self.direction,
            "format": self.format,
            "affinity": self.affinity,
        }
        put(wire, "metadata", None if self.metadata is None else dict(self.metadata))
        put(wire, "tokenTtlMinutes", self.token_ttl_minutes)
        return wire


@dataclass(frozen=True)
class StreamStarted:
    """``progress`` event with ``streamEvent:"stream_started"`` announcing streams of a task.

    Parsing drops (with a warning) entries that are malformed or use an unknown direction,
    format or affinity, as consumers must; the other entries are kept.
    """

    TYPE: ClassVar[str] = "progress"
    STREAM_EVENT: ClassVar[str] = "stream_started"

    task_id: str
    streams: Mapping[str, StreamAnnouncement] = field(default_factory=dict)
    declared_stream: str | None = None
    protocol_version: str | None = PROTOCOL_VERSION

    @classmethod
    def from_wire(cls, value: object) -> StreamStarted:
        """Parse; raises ProtocolError if the event or its ``streams`` map is malformed."""
        w = "stream_started"
        obj = as_object(value, w)
        expect_type(obj, cls.TYPE, w)
        if obj.get("streamEvent") != cls.STREAM_EVENT:
            raise ProtocolError(f"{w}.streamEvent: expected {cls.STREAM_EVENT!r}")
        task_id = req_str(obj, "taskId", w)
        with message_context(w, task_id):
            streams: dict[str, StreamAnnouncement] = {}
            for stream_id, entry in req_object(obj, "streams", w).items():
                try:
                    streams[stream_id] = StreamAnnouncement.from_wire(
                        entry, f"{w}.streams.{stream_id}"
                    )
                except ProtocolError as exc:
                    logger.warning("dropping announced stream of task %s: %s", task_id, exc)
            return cls(
                task_id=task_id,
                streams=streams,
                declared_stream=opt_str(obj, "declaredStream", w),
                protocol_version=opt_str(obj, "protocolVersion", w),
            )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {
            "type": self.TYPE,
            "taskId": self.task_id,
            "streamEvent": self.STREAM_EVENT,
        }
        put(wire, "declaredStream", self.declared_stream)
        wire["streams"] = {sid: s.to_wire() for sid, s in self.streams.items()}
        put(wire, "protocolVersion", self.protocol_version)
        return wire
