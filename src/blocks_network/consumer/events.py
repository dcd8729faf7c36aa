"""What a TaskSession hands to callbacks: :class:`TaskEvent` and :class:`CallbackErrorContext`.

A TaskEvent keeps the wire message as received (``data``) plus its PubNub timetoken, and
reads typed properties from it leniently: a malformed field reads as None instead of
failing the whole event, because a consumer should still see events from agents that are
slightly off-spec. The strict parser in ``blocks_network.protocol.events`` is available as
:attr:`TaskEvent.parsed`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blocks_network.protocol.artifacts import ArtifactRef, parse_artifact_ref
from blocks_network.protocol.constants import TERMINAL_STATES
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.events import TaskEvent as WireTaskEvent
from blocks_network.protocol.events import TerminalEvent, parse_task_event
from blocks_network.protocol.stream_setup import StreamStarted

__all__ = ["CallbackErrorContext", "TaskEvent"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEvent:
    """One event of a task channel (``request``, ``progress``, ``artifact``, ``terminal``, …).

    ``timetoken`` is the PubNub publish timetoken (None for synthetic events, e.g. the
    terminal a session builds from a task's recorded state).
    """

    data: Mapping[str, Any]
    timetoken: int | None = None
    synthetic: bool = field(default=False, compare=False)

    @classmethod
    def from_wire(cls, message: object, timetoken: int | None = None) -> TaskEvent | None:
        """Wrap a task-channel message; None when it is not an object with a string ``type``."""
        if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
            return None
        return cls(dict(message), timetoken)

    @classmethod
    def synthetic_terminal(cls, task_id: str, state: str) -> TaskEvent:
        """``{type:"terminal", taskId, state}`` for a task known to be over from its record."""
        return cls({"type": TerminalEvent.TYPE, "taskId": task_id, "state": state}, None, True)

    def _str(self, key: str) -> str | None:
        value = self.data.get(key)
        return value if isinstance(value, str) else None

    @property
    def type(self) -> str:
        """The wire ``type`` (e.g. ``"progress"``)."""
        return str(self.data.get("type"))

    @property
    def task_id(self) -> str | None:
        return self._str("taskId")

    @property
    def message(self) -> str | None:
        """Status text of a ``progress``/``log`` event."""
        return self._str("message")

    @property
    def progress(self) -> float | None:
        """Numeric ``progress`` of a progress event (e.g. 0 at start), if any."""
        value = self.data.get("progress")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    @property
    def state(self) -> str | None:
        """``running`` on progress events; ``completed``/``failed``/``canceled`` on terminals."""
        return self._str("state")

    @property
    def error(self) -> str | None:
        """Why a task failed (terminal events)."""
        return self._str("error")

    @property
    def reason(self) -> str | None:
        """``"terminated"`` when TerminateTask ended the task."""
        return self._str("reason")

    @property
    def completion_reason(self) -> str | None:
        """``"duration_expired"`` when a pipe task reached its deadline."""
        return self._str("completionReason")

    @property
    def status(self) -> str | None:
        """``paused``/``resumed``/``heartbeat`` on system events."""
        return self._str("status")

    @property
    def stream_event(self) -> str | None:
        """``"stream_started"`` on a stream announcement."""
        return self._str("streamEvent")

    @property
    def artifact_ref(self) -> ArtifactRef | None:
        """The parsed artifact reference of an ``artifact`` event (None if absent or invalid)."""
        raw = self.data.get("artifactRef")
        if raw is None:
            return None
        try:
            return parse_artifact_ref(raw)
        except ProtocolError as exc:
            logger.warning("ignoring an invalid artifactRef on task %s: %s", self.task_id, exc)
            return None

    @property
    def is_terminal(self) -> bool:
        """True for a ``terminal`` event with a terminal state."""
        return self.type == TerminalEvent.TYPE and self.state in TERMINAL_STATES

    @property
    def is_stream_started(self) -> bool:
        return self.type == "progress" and self.stream_event == StreamStarted.STREAM_EVENT

    @property
    def parsed(self) -> WireTaskEvent | None:
        """The strictly parsed protocol event, or None if unknown or malformed."""
        try:
            return parse_task_event(self.data)
        except ProtocolError:
            return None


@dataclass(frozen=True)
class CallbackErrorContext:
    """Where a callback error happened.

    ``entry_point`` is ``"taskSession"``; ``callback_type`` is one of ``onProgress``,
    ``onArtifact``, ``onTerminal``, ``onSystem``, ``onEvent``, ``onStream``,
    ``onCancelRequested``; ``event`` is what the callback was given.
    """

    entry_point: str
    callback_type: str
    event: Any
