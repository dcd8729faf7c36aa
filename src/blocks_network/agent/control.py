"""Control-channel messages (protocol §3.1, §3.4): validate, then hand to the task runner.

:meth:`ControlHandler.handle` never raises: a malformed message (not an object, wrong field
types, unknown type, no task id) is logged and skipped so the instance keeps serving. A broken
StartTask whose task id and write token are readable, sent to this instance, is answered with
``terminal failed invalid_start_task`` so its consumer is not left waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from blocks_network.agent.logging import fields
from blocks_network.agent.task_runner import TaskRunner
from blocks_network.errors import ClosedError
from blocks_network.protocol.constants import (
    SYSTEM_STATUS_PAUSED,
    SYSTEM_STATUS_RESUMED,
)
from blocks_network.protocol.control import (
    CancelTask,
    ExpireTask,
    PauseTask,
    ResumeTask,
    RetryTask,
    StartTask,
    SwitchEnvironment,
    TerminateTask,
    is_broadcast_meta,
    is_supported_protocol_version,
    parse_control_message,
)
from blocks_network.protocol.errors import (
    AGENT_AT_CAPACITY,
    INVALID_START_TASK,
    UNSUPPORTED_PROTOCOL_VERSION,
    ProtocolError,
)
from blocks_network.types import StartTaskMessage

__all__ = ["ControlHandler", "ControlHooks"]

logger = logging.getLogger(__name__)

_PREVIEW_CHARS = 200


@dataclass(frozen=True)
class ControlHooks:
    """Instance callbacks the handler needs (all optional except ``concurrency``)."""

    concurrency: int
    accepting: Callable[[], bool]
    control_pubnub: Callable[[], Any]
    switch_environment: Callable[[SwitchEnvironment], None]
    on_start_task: Callable[[StartTaskMessage, Any], Any] | None = None
    on_cancel_task: Callable[[str, Any], Any] | None = None


def _preview(message: object) -> str:
    text = repr(message)
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…"


class ControlHandler:
    """Dispatches control messages; called on the control client's message thread."""

    def __init__(self, runner: TaskRunner, hooks: ControlHooks) -> None:
        self._runner = runner
        self._hooks = hooks
        self._token_lock = threading.Lock()
        self._latest_control_token: str | None = None

    def take_control_token(self) -> str | None:
        """The newest StartTask ``controlToken`` not yet applied (§3.4.7); clears it."""
        with self._token_lock:
            token, self._latest_control_token = self._latest_control_token, None
            return token

    def handle(self, message: object, meta: object) -> None:
        """Handle one control message; logs and skips anything malformed."""
        try:
            self._dispatch(message, meta)
        except Exception:
            logger.exception("control message handling failed; message skipped")

    def _dispatch(self, message: object, meta: object) -> None:
        broadcast = is_broadcast_meta(meta)
        try:
            parsed = parse_control_message(message)
        except ProtocolError as exc:
            logger.warning(
                "malformed control message skipped: %s",
                exc,
                extra=fields(taskId=exc.task_id, type=exc.message_type),
            )
            if exc.message_type == StartTask.TYPE and exc.task_id and not broadcast:
                self._answer_broken_start(message, exc.task_id)
            return
        if parsed is None:
            logger.info("control message of unknown type ignored: %s", _preview(message))
            return
        if isinstance(parsed, StartTask):
            raw_parts = message.get("requestParts") if isinstance(message, Mapping) else None
            self._start(parsed, broadcast, raw_parts)
        elif isinstance(parsed, CancelTask):
            self._cancel(parsed)
        elif isinstance(parsed, ExpireTask):
            self._runner.expire(parsed.task_id)
        elif isinstance(parsed, TerminateTask):
            self._runner.terminate(parsed.task_id)
        elif isinstance(parsed, PauseTask):
            self._runner.announce(parsed.task_id, SYSTEM_STATUS_PAUSED)
        elif isinstance(parsed, ResumeTask):
            self._runner.announce(parsed.task_id, SYSTEM_STATUS_RESUMED)
        elif isinstance(parsed, RetryTask):
            logger.info(
                "RetryTask for %s ignored (no-op)",
                parsed.task_id,
                extra=fields(taskId=parsed.task_id),
            )
        elif isinstance(parsed, SwitchEnvironment):
            if not is_supported_protocol_version(parsed.protocol_version):
                logger.warning("SwitchEnvironment with unsupported protocol version ignored")
                return
            self._hooks.switch_environment(parsed)

    def _answer_broken_start(self, message: object, task_id: str) -> None:
        if not isinstance(message, Mapping) or not isinstance(message.get("writeToken"), str):
            return
        org = message.get("orgId")
        owner = message.get("ownerId")
        claims = message.get("callerClaims")
        sub = claims.get("sub") if isinstance(claims, Mapping) else None
        start = StartTask(
            task_id=task_id,
            owner_id=owner if isinstance(owner, str) else (sub if isinstance(sub, str) else None),
            org_id=org if isinstance(org, str) else None,
            write_token=message["writeToken"],
        )
        self._runner.reject(start, INVALID_START_TASK)

    def _start(self, start: StartTask, broadcast: bool, raw_parts: object) -> None:
        task_id = start.task_id
        if not is_supported_protocol_version(start.protocol_version):
            if not broadcast:
                self._runner.reject(
                    start, UNSUPPORTED_PROTOCOL_VERSION, protocol_version=start.protocol_version
                )
            return
        if self._runner.already_accepted(task_id):
            # Redelivered (e.g. after a reconnect): it ran or runs here already.
            logger.info(
                "ignoring duplicate StartTask for %s", task_id, extra=fields(taskId=task_id)
            )
            return
        problem = start.pipe_problem()
        if problem is not None:
            if not broadcast:
                logger.warning(
                    "invalid pipe task %s: %s", task_id, problem, extra=fields(taskId=task_id)
                )
                self._runner.reject(start, INVALID_START_TASK)
            return
        concurrency = self._hooks.concurrency
        full = concurrency > 0 and self._runner.active_count >= concurrency
        if full or not self._hooks.accepting():
            if not broadcast:
                self._runner.reject(start, AGENT_AT_CAPACITY)
            return
        if start.control_token:
            with self._token_lock:
                self._latest_control_token = start.control_token
        if self._hooks.on_start_task is not None:
            task = StartTaskMessage.from_start_task(
                start, raw_parts=raw_parts, keep_write_token=True
            )
            self._hooks.on_start_task(task, self._hooks.control_pubnub())
            return
        try:
            self._runner.start(start, raw_parts)
        except ClosedError:
            logger.info("task %s arrived while stopping; canceled", task_id)

    def _cancel(self, cancel: CancelTask) -> None:
        if self._hooks.on_cancel_task is not None:
            self._hooks.on_cancel_task(cancel.task_id, self._hooks.control_pubnub())
            return
        self._runner.cancel(cancel.task_id)
