"""One in-flight task's bookkeeping, and which terminal ends it (protocol §3.3, §3.5).

:func:`terminal_for` is the pure rule: expired → ``completed`` with
``completionReason:"duration_expired"``; otherwise cancelled → ``canceled`` (with
``reason:"terminated"`` after TerminateTask); otherwise ``completed``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from blocks_network.agent.credentials import TaskCredentials
from blocks_network.agent.scheduler import TimerHandle
from blocks_network.agent.status_throttle import StatusThrottle
from blocks_network.protocol.constants import (
    COMPLETION_REASON_DURATION_EXPIRED,
    TASK_STATE_CANCELED,
    TASK_STATE_COMPLETED,
    TERMINAL_REASON_TERMINATED,
)
from blocks_network.protocol.control import StartTask
from blocks_network.protocol.events import TerminalEvent
from blocks_network.types import TaskContext

__all__ = ["SHUTDOWN_REASON", "ActiveTask", "terminal_for"]

logger = logging.getLogger(__name__)

#: ``reason`` of the ``canceled`` terminal of a task the instance had to cut short on shutdown.
SHUTDOWN_REASON = "instance_shutdown"


def terminal_for(
    task_id: str,
    *,
    cancelled: bool,
    expired: bool,
    terminated: bool,
    protocol_version: str | None,
    shutdown: bool = False,
) -> TerminalEvent:
    """The terminal a task ends with once its handler returned (or it was cut short)."""
    if expired:
        return TerminalEvent(
            task_id,
            TASK_STATE_COMPLETED,
            reason=TERMINAL_REASON_TERMINATED if terminated else None,
            completion_reason=COMPLETION_REASON_DURATION_EXPIRED,
            protocol_version=protocol_version,
        )
    if cancelled or terminated:
        reason = (
            TERMINAL_REASON_TERMINATED if terminated else (SHUTDOWN_REASON if shutdown else None)
        )
        return TerminalEvent(
            task_id, TASK_STATE_CANCELED, reason=reason, protocol_version=protocol_version
        )
    return TerminalEvent(task_id, TASK_STATE_COMPLETED, protocol_version=protocol_version)


class ActiveTask:
    """A task whose handler has not finished. ``lock`` orders status flushes against the end.

    ``ended`` flips once (under ``lock``) when the task's terminal is decided; after that no
    event of the task is published any more, whoever holds the task.
    """

    def __init__(self, start: StartTask, creds: TaskCredentials, ctx: TaskContext) -> None:
        self.start = start
        self.creds = creds
        self.ctx = ctx
        self.lock = threading.Lock()
        self.ended = False
        self.shutdown = False
        self.throttle = StatusThrottle()
        self.flush_timer: TimerHandle | None = None
        self.deadline_timer: TimerHandle | None = None
        self.pubnub: Any = None
        #: Called (any thread) after cancel, expiry, terminate or shutdown set the cancel
        #: event: an async handler's runner cancels its coroutine there.
        self.on_interrupt: Callable[[], None] | None = None

    @property
    def task_id(self) -> str:
        return self.start.task_id

    @property
    def is_pipe(self) -> bool:
        return self.ctx.task.is_pipe

    def terminal(self) -> TerminalEvent:
        """The terminal this task ends with now, from its flags."""
        return terminal_for(
            self.task_id,
            cancelled=self.ctx.is_cancelled,
            expired=self.ctx.is_expired,
            terminated=self.ctx.is_terminated,
            protocol_version=self.creds.protocol_version,
            shutdown=self.shutdown,
        )

    def interrupted(self) -> bool:
        """True when the handler was asked to stop (cancel, expiry, terminate, shutdown)."""
        return self.ctx.is_cancelled or self.ctx.is_expired or self.ctx.is_terminated

    def notify_interrupt(self) -> None:
        """Tell the handler's runner the task was asked to stop (after the flags are set)."""
        hook = self.on_interrupt
        if hook is not None:
            try:
                hook()
            except Exception:
                logger.exception("interrupting task %s failed", self.task_id)

    def mark_ended(self) -> bool:
        """Flip ``ended`` (caller holds ``lock``); False if it was already ended. Stops timers."""
        if self.ended:
            return False
        self.ended = True
        self.throttle.clear()
        for timer in (self.flush_timer, self.deadline_timer):
            if timer is not None:
                timer.cancel()
        return True
