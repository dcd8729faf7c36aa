"""Access Manager tokens the backend mints for each Blocks role (protocol.md §6).

Every token is signed in process with the environment keyset's secret key, so the
realtime server verifies it exactly as it verifies a token from the grant endpoint.
"""

from __future__ import annotations

import time

from blocks_devnet.realtime.access_tokens import READ, WRITE, TokenGrant, issue_token
from blocks_devnet.realtime.keysets import Keyset
from blocks_network.protocol.channels import control_channel, setup_channel, task_channel

#: Control-channel tokens last a day; connect and StartTask hand out fresh ones.
CONTROL_TOKEN_TTL_MINUTES = 24 * 60
#: Default lifetime of task tokens (write and read); long tasks get their duration.
TASK_TOKEN_TTL_MINUTES = 120


def _mint(
    keyset: Keyset, ttl_minutes: int, channels: dict[str, int], authorized_uuid: str | None
) -> str:
    grant = TokenGrant(
        issued_at=int(time.time()),
        ttl_minutes=max(1, min(ttl_minutes, 43200)),
        channels=channels,
        authorized_uuid=authorized_uuid,
    )
    return issue_token(grant, keyset.secret_key)


def control_token(keyset: Keyset, agent_id: str, instance_id: str) -> str:
    """Read (subscribe, presence) on the agent's control channel, bound to the instance."""
    return _mint(keyset, CONTROL_TOKEN_TTL_MINUTES, {control_channel(agent_id): READ}, instance_id)


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
    keyset: Keyset, org_id: str, task_id: str, ttl_minutes: int = TASK_TOKEN_TTL_MINUTES
) -> str:
    """T4: read the task channel (events, history, files). Not uuid-bound: session
    clients pick a fresh uuid each time."""
    return _mint(keyset, ttl_minutes, {task_channel(org_id, task_id): READ}, None)


def stream_token(keyset: Keyset, channel: str, *, write: bool, ttl_minutes: int) -> str:
    """T7a (writer, ``write=True``) or T7c (reader; readers of inbound or bidirectional
    streams also write)."""
    return _mint(keyset, ttl_minutes, {channel: READ | WRITE if write else READ}, None)
