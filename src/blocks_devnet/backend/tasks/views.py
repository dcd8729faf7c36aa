"""How tasks look on the wire: GetTask/ListTasks task objects and the SendMessage result."""

from __future__ import annotations

import time
from typing import Any

from blocks_devnet.backend.tasks.store import STATE_QUEUED, TaskRecord
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.task_api import SendMessageResult, TaskInfo


def iso_ms(epoch_ms: int) -> str:
    """``2026-05-01T12:00:00.123Z`` (UTC, millisecond precision)."""
    seconds, ms = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def status_channel(record: TaskRecord) -> str:
    return task_channel(record.org_id, record.task_id)


def task_object(record: TaskRecord) -> dict[str, Any]:
    """The task as GetTask (wrapped in ``{"task": ...}``) and ListTasks report it.

    Times are ISO-8601 UTC strings; optional facts appear only when known.
    """
    extra: dict[str, Any] = {
        "ownerId": record.owner_id,
        "orgId": record.org_id,
        "taskKind": record.task_kind,
        "billingMode": record.billing_mode,
        "hasStream": record.has_stream,
        "queued": record.state == STATE_QUEUED,
        "protocolVersion": record.protocol_version,
        "streamChannels": {"status": status_channel(record)},
    }
    optional: dict[str, Any] = {
        "startedTime": None if record.started_ms is None else iso_ms(record.started_ms),
        "endedTime": None if record.ended_ms is None else iso_ms(record.ended_ms),
        "duration": record.duration,
        "durationExpiresAtMs": record.duration_expires_at_ms,
        "error": record.error,
        "reason": record.reason,
        "completionReason": record.completion_reason,
    }
    extra.update({k: v for k, v in optional.items() if v is not None})
    return TaskInfo(
        task_id=record.task_id,
        state=record.state,
        agent_name=record.agent_name,
        owner=record.owner_id,
        created_time=iso_ms(record.created_ms),
        updated_time=iso_ms(record.updated_ms),
        extra=extra,
    ).to_wire()


def send_result(
    record: TaskRecord,
    *,
    idempotent: bool,
    read_token: str,
    subscribe_key: str,
    publish_key: str,
    push_config_id: str | None = None,
) -> dict[str, Any]:
    """The SendMessage ``result`` (protocol.md §4.1)."""
    return SendMessageResult(
        task_id=record.task_id,
        state=record.state,
        idempotent=idempotent,
        queued=record.state == STATE_QUEUED,
        push_config_id=push_config_id,
        read_token=read_token,
        status_channel=status_channel(record),
        subscribe_key=subscribe_key,
        publish_key=publish_key,
    ).to_wire()
