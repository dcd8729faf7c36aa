"""Identifier formats of the protocol (§2, §4.1): instance ids, RPC ids and client user ids.

Generators read the clock and a random source but do no I/O; ``now_ms`` can be injected.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from typing import Final

from .channels import validate_agent_name

__all__ = [
    "DEFAULT_CLIENT_ID",
    "instance_agent_name",
    "new_download_client_id",
    "new_instance_id",
    "new_rpc_id",
    "new_session_client_id",
    "stream_client_id",
    "task_client_user_id",
]

DEFAULT_CLIENT_ID: Final = "blocks-agent"
"""PubNub user id used when the caller supplies none."""

_INSTANCE_ID_RE: Final = re.compile(
    r"AG-([A-Za-z0-9_]+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def new_instance_id(agent_name: str) -> str:
    """Return a fresh agent instance id ``AG-{agentName}-{uuid4}``.

    Raises ProtocolError if ``agent_name`` breaks the agent-name rule.
    """
    return f"AG-{validate_agent_name(agent_name)}-{uuid.uuid4()}"


def instance_agent_name(instance_id: str) -> str | None:
    """Return the agent name inside an instance id, or None if it is not one."""
    match = _INSTANCE_ID_RE.fullmatch(instance_id)
    return match.group(1) if match else None


def new_rpc_id(now_ms: int | None = None) -> str:
    """Return a JSON-RPC request id ``rpc-{epoch ms}-{8 hex chars}``."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"rpc-{ms}-{secrets.token_hex(4)}"


def new_session_client_id() -> str:
    """Return a consumer session PubNub user id ``blocks-task-{12 hex}``."""
    return f"blocks-task-{uuid.uuid4().hex[:12]}"


def new_download_client_id() -> str:
    """Return a temporary download-client PubNub user id ``blocks-dl-{12 hex}``."""
    return f"blocks-dl-{uuid.uuid4().hex[:12]}"


def task_client_user_id(instance_id: str) -> str:
    """Return the user id of an agent's embedded TaskClient: ``{instanceId}-taskclient``."""
    return f"{instance_id}-taskclient"


def stream_client_id(prefix: str, counter: int) -> str:
    """Return a stream client user id ``{prefix}-stream-{NNNN}`` (counter zero-padded to 4).

    ``prefix`` is the agent name (agent side) or the consumer's user id (consumer side); the
    caller owns the per-process counter.
    """
    return f"{prefix}-stream-{counter:04d}"
