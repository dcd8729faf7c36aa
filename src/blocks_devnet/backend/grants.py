"""Access Manager tokens the backend mints for each Blocks role (protocol.md §6).

Every token is signed in process with the environment keyset's secret key, so the
realtime server verifies it exactly as it verifies a token from the grant endpoint.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from blocks_devnet.realtime.access_tokens import READ, WRITE, TokenGrant, issue_token
from blocks_devnet.realtime.keysets import Keyset
from blocks_network.protocol.channels import control_channel, setup_channel, task_channel

#: Control-channel tokens last a day; connect hands out a fresh one, StartTask a recent one.
CONTROL_TOKEN_TTL_MINUTES = 24 * 60
#: Default lifetime of task tokens (write and read); long tasks get their duration.
TASK_TOKEN_TTL_MINUTES = 120


def _mint(
    keyset: Keyset,
    ttl_minutes: int,
    channels: dict[str, int],
    authorized_uuid: str | None,
    channel_patterns: dict[str, int] | None = None,
) -> str:
    grant = TokenGrant(
        issued_at=int(time.time()),
        ttl_minutes=max(1, min(ttl_minutes, 43200)),
        channels=channels,
        channel_patterns=channel_patterns or {},
        authorized_uuid=authorized_uuid,
    )
    return issue_token(grant, keyset.secret_key)


def control_token(keyset: Keyset, agent_id: str, instance_id: str) -> str:
    """Read (subscribe, presence) on the agent's control channel, bound to the instance."""
    return _mint(keyset, CONTROL_TOKEN_TTL_MINUTES, {control_channel(agent_id): READ}, instance_id)


#: StartTask reuses an instance's control token while at least this much of it is left.
CONTROL_TOKEN_REUSE_MINUTES = CONTROL_TOKEN_TTL_MINUTES // 2
_CONTROL_CACHE_SIZE = 1024
_control_tokens: dict[tuple[str, str, str, str], tuple[str, int]] = {}


def reusable_control_token(
    keyset: Keyset, agent_id: str, instance_id: str, revoked: Callable[[str], bool]
) -> str:
    """A control token for StartTask: the instance's previous one while it has at least
    :data:`CONTROL_TOKEN_REUSE_MINUTES` left and ``revoked(token)`` is false, else a new
    one. Minting costs more than the rest of a task's dispatch."""
    key = (keyset.subscribe_key, keyset.secret_key, agent_id, instance_id)
    now = int(time.time())
    cached = _control_tokens.get(key)
    reuse_until = (CONTROL_TOKEN_TTL_MINUTES - CONTROL_TOKEN_REUSE_MINUTES) * 60
    if cached is not None and now - cached[1] < reuse_until and not revoked(cached[0]):
        return cached[0]
    token = control_token(keyset, agent_id, instance_id)
    if len(_control_tokens) >= _CONTROL_CACHE_SIZE:
        _control_tokens.clear()
    _control_tokens[key] = (token, now)
    return token


def task_write_token(
    keyset: Keyset,
    org_id: str,
    task_id: str,
    instance_id: str,
    ttl_minutes: int = TASK_TOKEN_TTL_MINUTES,
) -> str:
    """T2: publish task events and files on the task channel, and the stream-setup handshake."""
    channels = {
        task_channel(org_id, task_id): READ | WRITE,
        setup_channel(org_id, task_id): WRITE,
    }
    return _mint(keyset, ttl_minutes, channels, instance_id)


def task_read_token(
    keyset: Keyset,
    org_id: str,
    task_id: str,
    ttl_minutes: int = TASK_TOKEN_TTL_MINUTES,
    *,
    org_wide: bool = False,
) -> str:
    """T4: read the task channel (events, history, files). Not uuid-bound: session
    clients pick a fresh uuid each time. ``org_wide``: also read every task channel of
    ``org_id`` (:func:`org_task_channels_pattern`), for an owner who is the org's only
    member, so its sessions share subscribe polls (docs/task-service.md)."""
    patterns = {org_task_channels_pattern(org_id): READ} if org_wide else None
    return _mint(keyset, ttl_minutes, {task_channel(org_id, task_id): READ}, None, patterns)


def org_task_channels_pattern(org_id: str) -> str:
    """The Access Manager pattern of the task channels ``u.{orgId}.{taskId}`` of one org
    (protocol.md §2's ``u.{orgId}.*``, as an anchored regex: nothing else matches, whether
    the server matches whole names or searches)."""
    prefix = task_channel(org_id, "x")[:-1]
    return f"^{re.escape(prefix)}[^.]+$"


def stream_token(keyset: Keyset, channel: str, *, write: bool, ttl_minutes: int) -> str:
    """T7a (writer, ``write=True``) or T7c (reader; readers of inbound or bidirectional
    streams also write)."""
    return _mint(keyset, ttl_minutes, {channel: READ | WRITE if write else READ}, None)
