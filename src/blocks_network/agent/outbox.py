"""Task events the network did not take yet: kept, and retried in order until it answers.

A task's events normally go straight out (see :meth:`TaskRunner.publish_event`). When one
fails — the network is restarting, or the connection dropped — it and every later event of
that task wait here, and one thread (``blocks-agent-outbox``) retries them with capped,
jittered back-off (0.5 s doubling to 5 s) until the network takes them or the task's own
deadline passes (``TaskCredentials.deliver_by``). The handler's thread is not held: it hands
the events over and goes on.

At most once: an event whose publish was sent but not answered may have been stored. Before
sending it again the outbox reads the channel's newest messages (``fetch_messages`` with the
task's write token, which may read its channel) and looks for it after the last event the
network had confirmed when it was sent: after that point there can be only this one of ours
and the ones pipelined with it (see :meth:`TaskRunner.publish_event`), which all differ (a
task's events do). Found → not resent, and the task's later uncertain events are looked
for after it. History unreadable → tried again later. This works against the hosted
service too, which has no publish idempotency.

Memory is bounded: :data:`MAX_EVENTS_PER_TASK` events per task and :data:`MAX_BYTES` in all;
past either, new non-terminal events are dropped with an error line (terminals are always
kept: one small event per task).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from blocks_network.agent.logging import fields
from blocks_network.agent.realtime_http import PublishOutcome
from blocks_network.transport.retry import RECONNECT

if TYPE_CHECKING:
    from blocks_network.agent.credentials import TaskCredentials

__all__ = ["MAX_BYTES", "MAX_EVENTS_PER_TASK", "Backlog", "EventOutbox"]

logger = logging.getLogger(__name__)

#: Retry back-off: from 0.5 s doubling to 5 s, jittered down (until the task's deadline).
RETRY: Final = RECONNECT
MAX_EVENTS_PER_TASK: Final = 1000
MAX_BYTES: Final = 64 * 1024 * 1024
_JOIN_TIMEOUT_S: Final = 2.0
_IDLE_WAIT_S: Final = 60.0

#: ``send(creds, wire)``: one publish attempt, never resent.
SendOnce = Callable[["TaskCredentials", dict[str, Any]], PublishOutcome]
#: ``stored(creds, wire, after)``: the timetoken of ``wire`` on the task channel after
#: ``after``, 0 when it is not there, None when the history cannot be read.
FindStored = Callable[["TaskCredentials", dict[str, Any], "int | None"], "int | None"]


@dataclass
class _Event:
    wire: dict[str, Any]
    size: int
    #: An earlier attempt may have been stored: look in the history before resending.
    uncertain: bool
    #: The timetoken of the last event the network confirmed before that attempt.
    after: int | None = None

    @property
    def terminal(self) -> bool:
        return self.wire.get("type") == "terminal"


@dataclass
class Backlog:
    """One task's waiting events, oldest first (guarded by the task's ``publish_lock``)."""

    events: deque[_Event] = field(default_factory=deque)
    failures: int = 0
    next_attempt: float = 0.0
    delivered: int = 0


def _size(wire: dict[str, Any]) -> int:
    return len(json.dumps(wire, separators=(",", ":")))


class EventOutbox:
    """Retries the events of tasks whose publishes failed. Thread-safe.

    :meth:`hand_over` and :meth:`append` are called with the task's ``publish_lock`` held.
    """

    def __init__(
        self,
        send: SendOnce,
        stored: FindStored,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_events_per_task: int = MAX_EVENTS_PER_TASK,
        max_bytes: int = MAX_BYTES,
        on_task_done: Callable[[], None] | None = None,
    ) -> None:
        self._send = send
        self._stored = stored
        #: Called (no lock held) when a task's last waiting event was delivered or dropped.
        self._on_task_done = on_task_done
        self._clock = clock
        self._max_events = max_events_per_task
        self._max_bytes = max_bytes
        self._cond = threading.Condition()
        self._tasks: dict[str, TaskCredentials] = {}
        self._bytes = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    # --- queueing (the task's publish_lock held) ------------------------------------------

    def hand_over(self, creds: TaskCredentials, wire: dict[str, Any], *, uncertain: bool) -> None:
        """Start retrying ``wire`` (whose publish failed) for ``creds``' task."""
        if creds.backlog is None:
            creds.backlog = Backlog()
            logger.warning(
                "task %s: the network did not take an event; its events wait and are retried "
                "until the network answers (for up to %.0f s)",
                creds.task_id,
                max(0.0, creds.deliver_by - self._clock()),
                extra=fields(taskId=creds.task_id),
            )
        self._add(creds, wire, uncertain)

    def append(self, creds: TaskCredentials, wire: dict[str, Any]) -> None:
        """Queue ``wire`` behind the task's waiting events."""
        self._add(creds, wire, False)

    def _add(self, creds: TaskCredentials, wire: dict[str, Any], uncertain: bool) -> None:
        backlog = creds.backlog
        assert backlog is not None
        event = _Event(wire, _size(wire), uncertain, _confirmed(creds))
        with self._cond:
            if self._closed:
                logger.error(
                    "task %s: %s event dropped: the agent instance is stopping",
                    creds.task_id,
                    wire.get("type"),
                    extra=fields(taskId=creds.task_id),
                )
                return
            full = len(backlog.events) >= self._max_events or self._bytes + event.size > (
                self._max_bytes
            )
            if full and not event.terminal:
                logger.error(
                    "task %s: %s event DROPPED: %d events (%d bytes in all tasks) already wait "
                    "for the network, the limit is %d per task and %d bytes",
                    creds.task_id,
                    wire.get("type"),
                    len(backlog.events),
                    self._bytes,
                    self._max_events,
                    self._max_bytes,
                    extra=fields(taskId=creds.task_id),
                )
                return
            backlog.events.append(event)
            self._bytes += event.size
            if creds.task_id not in self._tasks:
                self._tasks[creds.task_id] = creds
                self._start_thread()
            self._cond.notify_all()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="blocks-agent-outbox", daemon=True
            )
            self._thread.start()

    # --- queries ------------------------------------------------------------------------------

    @property
    def waiting_tasks(self) -> int:
        with self._cond:
            return len(self._tasks)

    def task_ids(self) -> set[str]:
        """The tasks whose events wait: not ended as far as the network knows."""
        with self._cond:
            return set(self._tasks)

    def wait_flushed(self, creds: TaskCredentials, timeout: float) -> bool:
        """Block until no event of ``creds``' task waits (True) or ``timeout`` passes."""
        return self._wait(lambda: creds.task_id not in self._tasks, timeout)

    def wait_empty(self, timeout: float) -> bool:
        """Block until no event of any task waits (True) or ``timeout`` passes."""
        return self._wait(lambda: not self._tasks, timeout)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = self._clock() + max(0.0, timeout)
        with self._cond:
            while not done() and not self._closed:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return done()

    # --- the retry thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = self._clock()
                due = [c for c in self._tasks.values() if _next_attempt(c) <= now]
                if not due:
                    soonest = min((_next_attempt(c) for c in self._tasks.values()), default=None)
                    self._cond.wait(_IDLE_WAIT_S if soonest is None else soonest - now)
                    continue
            for creds in due:
                try:
                    self._deliver(creds)
                except Exception:
                    logger.exception("retrying the events of task %s failed", creds.task_id)

    def _deliver(self, creds: TaskCredentials) -> None:
        """Send ``creds``' waiting events in order until one fails or none is left."""
        while not self._closed:
            with creds.publish_lock:
                backlog = creds.backlog
                if backlog is None or not backlog.events:
                    self._forget(creds, 0)
                    return
                if self._clock() >= creds.deliver_by:
                    self._give_up(creds, backlog)
                    return
                event = backlog.events[0]
            if not self._attempt(creds, event):
                backlog.failures += 1
                # The wait is the retry thread's, on a condition close() notifies.
                backlog.next_attempt = self._clock() + (RETRY.delay(backlog.failures) or 0.0)
                return
            backlog.failures = 0
            backlog.delivered += 1
            with creds.publish_lock:
                backlog.events.popleft()
                done = not backlog.events
                if done:
                    creds.backlog = None
                    logger.info(
                        "task %s: the network took its %d waiting event(s)",
                        creds.task_id,
                        backlog.delivered,
                        extra=fields(taskId=creds.task_id),
                    )
                self._forget(creds, event.size, remove=done)
            if done:
                self._task_done()
                return

    def _attempt(self, creds: TaskCredentials, event: _Event) -> bool:
        """One try at ``event``; True once it is on the channel (or refused for good)."""
        if event.uncertain:
            found = self._stored(creds, event.wire, event.after)
            if found is None:
                return False
            if found:
                # Pipelined with it, the task's later uncertain events were stored after it.
                with creds.publish_lock:
                    for later in creds.backlog.events if creds.backlog is not None else ():
                        if later.uncertain and later is not event:
                            later.after = max(later.after or 0, found)
                logger.info(
                    "task %s: a %s event sent before the connection dropped was stored; not "
                    "sending it again",
                    creds.task_id,
                    event.wire.get("type"),
                    extra=fields(taskId=creds.task_id),
                )
                creds.last_answer = PublishOutcome("accepted", body=b'[1,"Sent","%d"]' % found)
                return True
            event.uncertain = False
        outcome = self._send(creds, event.wire)
        if outcome.status == "accepted":
            creds.last_answer = outcome
            return True
        if outcome.status == "refused":
            logger.error(
                "task %s: %s event refused by the network (%s); dropped",
                creds.task_id,
                event.wire.get("type"),
                outcome.detail,
                extra=fields(taskId=creds.task_id),
            )
            return True
        event.uncertain = outcome.status == "unknown"
        event.after = _confirmed(creds)
        logger.debug("task %s: retry failed (%s)", creds.task_id, outcome.detail)
        return False

    def _give_up(self, creds: TaskCredentials, backlog: Backlog) -> None:
        """(publish_lock held) Drop the task's events: its deadline passed."""
        size = sum(e.size for e in backlog.events)
        logger.error(
            "task %s: gave up on %d event(s) (%s): the network did not answer before the "
            "task's deadline",
            creds.task_id,
            len(backlog.events),
            ", ".join(str(e.wire.get("type")) for e in backlog.events),
            extra=fields(taskId=creds.task_id),
        )
        creds.events_lost += len(backlog.events)
        backlog.events.clear()
        creds.backlog = None
        self._forget(creds, size, remove=True)
        self._task_done()

    def _task_done(self) -> None:
        if self._on_task_done is not None:
            try:
                self._on_task_done()
            except Exception:
                logger.exception("the outbox's task-done callback failed")

    def _forget(self, creds: TaskCredentials, size: int, *, remove: bool = True) -> None:
        with self._cond:
            self._bytes -= size
            if remove:
                self._tasks.pop(creds.task_id, None)
            self._cond.notify_all()

    def close(self) -> int:
        """Stop retrying; returns how many events were still waiting (logged as lost)."""
        with self._cond:
            self._closed = True
            tasks = list(self._tasks.values())
            self._tasks.clear()
            self._cond.notify_all()
            thread = self._thread
        lost = 0
        for creds in tasks:
            if creds.backlog is not None:
                creds.events_lost += len(creds.backlog.events)
                lost += len(creds.backlog.events)
        if lost:
            logger.error(
                "%d task event(s) of %d task(s) were never taken by the network and are lost "
                "(the instance stopped while it was unreachable)",
                lost,
                len(tasks),
            )
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        return lost


def _confirmed(creds: TaskCredentials) -> int | None:
    """The timetoken of the task's last event the network confirmed."""
    last = creds.last_answer
    return last.timetoken if last is not None else None


def _next_attempt(creds: TaskCredentials) -> float:
    backlog = creds.backlog
    return backlog.next_attempt if backlog is not None else 0.0
