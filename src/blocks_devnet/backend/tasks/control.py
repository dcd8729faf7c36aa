"""CancelTask, TerminateTask, PauseTask, ResumeTask and RetryTask (protocol.md §3.4, §4.1).

The backend forwards each as a control message targeted at the instance that holds the
task. A task still waiting in the backlog has no instance: cancel and terminate end it
right here with a backend terminal; pause, resume and retry are refused (409) until an
instance runs it. Cancel and terminate of a finished task are harmless no-ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks import errors
from blocks_devnet.backend.tasks.dispatch import publish_control
from blocks_devnet.backend.tasks.store import STATE_QUEUED, TaskRecord
from blocks_network.protocol.constants import TASK_STATE_CANCELED, TERMINAL_REASON_TERMINATED
from blocks_network.protocol.control import (
    CancelTask,
    PauseTask,
    ResumeTask,
    RetryTask,
    TerminateTask,
)
from blocks_network.protocol.events import CancelRequested

if TYPE_CHECKING:
    from blocks_devnet.backend.tasks.service import TaskService


def _ack(service: TaskService, task_id: str) -> dict[str, Any]:
    record = service.store.get(task_id)
    state = record.state if record is not None else TASK_STATE_CANCELED
    return {"taskId": task_id, "state": state}


def cancel(
    service: TaskService, principal: Principal, task_id: str, reason: str | None
) -> dict[str, Any]:
    """Cooperative cancel: ``cancel_requested`` on the task channel first, then CancelTask
    to the instance (or a backend ``canceled`` terminal for a queued task)."""
    record = service.visible_task(principal, task_id)
    if record.terminal:
        return _ack(service, task_id)
    event = CancelRequested(record.task_id, service.now_ms(), record.protocol_version)
    service.publish_event(record, event.to_wire())
    if record.state == STATE_QUEUED:
        service.publish_terminal(record, TASK_STATE_CANCELED)
    else:
        message = CancelTask(
            record.task_id,
            reason=reason,
            caller=principal.user_id,
            protocol_version=record.protocol_version,
        )
        publish_control(service.ctx, record, message.to_wire())
    return _ack(service, task_id)


def terminate(service: TaskService, principal: Principal, task_id: str) -> dict[str, Any]:
    """Hard stop: TerminateTask to the instance; a queued task ends ``canceled`` with
    ``reason: terminated`` at once."""
    record = service.visible_task(principal, task_id)
    if record.terminal:
        return _ack(service, task_id)
    if record.state == STATE_QUEUED:
        service.publish_terminal(record, TASK_STATE_CANCELED, reason=TERMINAL_REASON_TERMINATED)
    else:
        message = TerminateTask(
            record.task_id, caller=principal.user_id, protocol_version=record.protocol_version
        )
        publish_control(service.ctx, record, message.to_wire())
    return _ack(service, task_id)


def _forwardable(record: TaskRecord, verb: str) -> None:
    if record.terminal:
        raise errors.conflict(
            f"Task {record.task_id} already ended ({record.state}); it cannot be {verb}."
        )
    if record.state == STATE_QUEUED:
        raise errors.conflict(
            f"Task {record.task_id} is still queued (no instance runs it yet); it can be {verb} "
            "once it starts."
        )


def pause(service: TaskService, principal: Principal, task_id: str) -> dict[str, Any]:
    return _forward(service, principal, task_id, PauseTask, "paused")


def resume(service: TaskService, principal: Principal, task_id: str) -> dict[str, Any]:
    return _forward(service, principal, task_id, ResumeTask, "resumed")


def retry(service: TaskService, principal: Principal, task_id: str) -> dict[str, Any]:
    return _forward(service, principal, task_id, RetryTask, "retried")


def _forward(
    service: TaskService,
    principal: Principal,
    task_id: str,
    kind: type[PauseTask | ResumeTask | RetryTask],
    verb: str,
) -> dict[str, Any]:
    """Send ``kind`` to the instance running the task; 409 if it is queued or ended."""
    record = service.visible_task(principal, task_id)
    _forwardable(record, verb)
    message = kind(
        record.task_id, caller=principal.user_id, protocol_version=record.protocol_version
    )
    publish_control(service.ctx, record, message.to_wire())
    return _ack(service, task_id)
