"""PubNub channel names of the Blocks protocol (§2): builders, parsers and naming rules.

Builders validate their inputs and raise ProtocolError, so a malformed name is caught where
it is made rather than as a silent subscription to the wrong channel. Parsers return None for
names that are not of their kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .constants import RESERVED_OWNER_PREFIXES, STREAM_ID_MAX_BYTES
from .errors import ProtocolError

__all__ = [
    "PRESENCE_SUFFIX",
    "REGISTRY_ALL",
    "REGISTRY_LOG",
    "REGISTRY_PRIVATE",
    "REGISTRY_PUBLIC",
    "StreamChannel",
    "TaskChannel",
    "agent_channel_wildcard",
    "control_channel",
    "is_reserved_owner_id",
    "is_valid_agent_name",
    "normalize_tag_slug",
    "observability_channel",
    "parse_control_channel",
    "parse_setup_channel",
    "parse_stream_channel",
    "parse_task_channel",
    "presence_channel",
    "registry_tag_index",
    "setup_channel",
    "stream_channel",
    "stream_channel_wildcard",
    "task_channel",
    "task_channel_wildcard",
    "task_object_id",
    "validate_agent_name",
    "validate_stream_id",
]

_AGENT_NAME_RE: Final = re.compile(r"[A-Za-z0-9_]+")
_STREAM_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_SLUG_INVALID_RE: Final = re.compile(r"[^a-z0-9._]")
_UNDERSCORES_RE: Final = re.compile(r"_{2,}")
# A segment is one dot-separated part of a channel name: no separator, wildcard or multiplex
# comma (PubNub splits channel lists on commas), and no whitespace.
_SEGMENT_FORBIDDEN_RE: Final = re.compile(r"[.,*\s]")
# Separators after which a reserved word makes an owner id look like a namespace.
_OWNER_NAMESPACE_SEPARATORS: Final = (".", "-", ":")

PRESENCE_SUFFIX: Final = "-pnpres"
REGISTRY_ALL: Final = "registry.all"
REGISTRY_PUBLIC: Final = "registry.public"
REGISTRY_PRIVATE: Final = "registry.private"
REGISTRY_LOG: Final = "registry.log"


@dataclass(frozen=True)
class TaskChannel:
    """The parts of a ``u.{orgId}.{taskId}`` or ``setup.{orgId}.{taskId}`` name."""

    org_id: str
    task_id: str


@dataclass(frozen=True)
class StreamChannel:
    """The parts of a ``stream.{agentName}.{streamId}`` name."""

    agent_name: str
    stream_id: str


# --- Naming rules -----------------------------------------------------------------------------


def is_valid_agent_name(name: object) -> bool:
    """Return True iff ``name`` is a string matching ``^[a-zA-Z0-9_]+$``."""
    return isinstance(name, str) and _AGENT_NAME_RE.fullmatch(name) is not None


def validate_agent_name(name: object) -> str:
    """Return ``name`` if it is a valid agent name, else raise ProtocolError saying why."""
    if not isinstance(name, str) or not name:
        raise ProtocolError("agent name must be a non-empty string")
    if _AGENT_NAME_RE.fullmatch(name) is None:
        raise ProtocolError(
            f"agent name {name!r} is invalid: use only letters, digits and underscores "
            "(no hyphens or dots), e.g. 'echo_agent'"
        )
    return name


def validate_stream_id(stream_id: object) -> str:
    """Return ``stream_id`` if valid (non-empty, ≤ 92 UTF-8 bytes, ``[A-Za-z0-9_-]``).

    Raises ProtocolError naming the broken rule.
    """
    if not isinstance(stream_id, str) or not stream_id:
        raise ProtocolError("stream id must be a non-empty string")
    if len(stream_id.encode("utf-8")) > STREAM_ID_MAX_BYTES:
        raise ProtocolError(
            f"stream id {stream_id[:20]!r}… is longer than {STREAM_ID_MAX_BYTES} bytes"
        )
    if _STREAM_ID_RE.fullmatch(stream_id) is None:
        raise ProtocolError(
            f"stream id {stream_id!r} is invalid: use only letters, digits, '_' and '-'"
        )
    return stream_id


def normalize_tag_slug(text: str) -> str:
    """Return the registry slug of a tag name ("Image Generation" → ``image_generation``).

    Lowercases, maps every character outside ``[a-z0-9._]`` to ``_``, collapses runs of ``_``
    and strips leading/trailing ``_``. May return ``""``.
    """
    slug = _SLUG_INVALID_RE.sub("_", text.lower())
    return _UNDERSCORES_RE.sub("_", slug).strip("_")


def is_reserved_owner_id(owner_id: str) -> bool:
    """Return True if ``owner_id`` collides with a reserved namespace (case-insensitive).

    Reserved means: equal to one of ``agent, obs, sys, u, anonymous, system, stream`` or
    starting with one of them followed by ``.``, ``-`` or ``:``.
    """
    lowered = owner_id.lower()
    for prefix in RESERVED_OWNER_PREFIXES:
        if lowered == prefix:
            return True
        if any(lowered.startswith(prefix + sep) for sep in _OWNER_NAMESPACE_SEPARATORS):
            return True
    return False


def _segment(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{what} must be a non-empty string to build a channel name")
    if _SEGMENT_FORBIDDEN_RE.search(value):
        raise ProtocolError(
            f"{what} {value!r} cannot be used in a channel name: "
            "it must not contain '.', ',', '*' or whitespace"
        )
    return value


# --- Builders ---------------------------------------------------------------------------------


def control_channel(agent_id: str) -> str:
    """Return ``agent.{agentId}.control``, the control channel of one agent."""
    return f"agent.{_segment(agent_id, 'agent id')}.control"


def task_channel(org_id: str, task_id: str) -> str:
    """Return ``u.{orgId}.{taskId}``, the task event channel."""
    return f"u.{_segment(org_id, 'org id')}.{_segment(task_id, 'task id')}"


def setup_channel(org_id: str, task_id: str) -> str:
    """Return ``setup.{orgId}.{taskId}``, the stream-setup handshake channel."""
    return f"setup.{_segment(org_id, 'org id')}.{_segment(task_id, 'task id')}"


def stream_channel(agent_name: str, stream_id: str) -> str:
    """Return ``stream.{agentName}.{streamId}``, a stream's data channel."""
    return f"stream.{validate_agent_name(agent_name)}.{validate_stream_id(stream_id)}"


def task_channel_wildcard(org_id: str) -> str:
    """Return ``u.{orgId}.*`` (PAM grant pattern for all task channels of an org)."""
    return f"u.{_segment(org_id, 'org id')}.*"


def stream_channel_wildcard(agent_name: str) -> str:
    """Return ``stream.{agentName}.*`` (PAM grant pattern for all streams of an agent)."""
    return f"stream.{validate_agent_name(agent_name)}.*"


def agent_channel_wildcard(agent_name: str) -> str:
    """Return ``agent.{agentName}.*`` (PAM grant pattern for an agent's channels)."""
    return f"agent.{_segment(agent_name, 'agent name')}.*"


def observability_channel(agent_name: str) -> str:
    """Return ``obs.{agentName}.log`` (reserved; the runtime does not publish there)."""
    return f"obs.{validate_agent_name(agent_name)}.log"


def task_object_id(task_id: str) -> str:
    """Return ``task.{taskId}``, the App Context metadata id of a task (not a pub/sub channel)."""
    return f"task.{_segment(task_id, 'task id')}"


def registry_tag_index(tag: str) -> str:
    """Return ``registry.skill.{slug}``, the registry index of agents carrying ``tag``."""
    slug = normalize_tag_slug(tag)
    if not slug:
        raise ProtocolError(f"tag {tag!r} has no letters or digits to build a registry index")
    return f"registry.skill.{slug}"


def presence_channel(channel: str) -> str:
    """Return PubNub's presence channel of ``channel`` (``{channel}-pnpres``)."""
    return channel + PRESENCE_SUFFIX


# --- Parsers ----------------------------------------------------------------------------------


def _three_parts(channel: object, head: str) -> tuple[str, str] | None:
    if not isinstance(channel, str) or channel.endswith(PRESENCE_SUFFIX):
        return None
    parts = channel.split(".")
    if len(parts) != 3 or parts[0] != head or not parts[1] or not parts[2]:
        return None
    if any(_SEGMENT_FORBIDDEN_RE.search(p) for p in parts[1:]):
        return None
    return parts[1], parts[2]


def parse_task_channel(channel: object) -> TaskChannel | None:
    """Split ``u.{orgId}.{taskId}``; None if ``channel`` is not a task channel."""
    parts = _three_parts(channel, "u")
    return None if parts is None else TaskChannel(*parts)


def parse_setup_channel(channel: object) -> TaskChannel | None:
    """Split ``setup.{orgId}.{taskId}``; None if ``channel`` is not a setup channel."""
    parts = _three_parts(channel, "setup")
    return None if parts is None else TaskChannel(*parts)


def parse_stream_channel(channel: object) -> StreamChannel | None:
    """Split ``stream.{agentName}.{streamId}``; None unless both parts are valid."""
    parts = _three_parts(channel, "stream")
    if parts is None:
        return None
    agent_name, stream_id = parts
    if not is_valid_agent_name(agent_name) or _STREAM_ID_RE.fullmatch(stream_id) is None:
        return None
    if len(stream_id.encode("utf-8")) > STREAM_ID_MAX_BYTES:
        return None
    return StreamChannel(agent_name, stream_id)


def parse_control_channel(channel: object) -> str | None:
    """Return the agent id of ``agent.{agentId}.control``; None for any other name."""
    parts = _three_parts(channel, "agent")
    if parts is None or parts[1] != "control":
        return None
    return parts[0]
