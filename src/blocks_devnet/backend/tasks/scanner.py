"""The safety net (issue 3 §10): every unfinished task reaches a terminal.

:func:`decide` is pure: given one active task, the time and the instances present on its
agent's control channel, it says what to do. :class:`Scanner` runs it over every active
task each ``scan_interval_seconds`` and carries the decisions out through the service:

- a request task running past ``maxRunningTimeSec`` → terminal ``failed``;
- a pipe task past ``durationExpiresAtMs`` → ``ExpireTask`` to its instance, then after
  ``expire_grace_seconds`` a terminal ``completed`` with ``completionReason:"duration_expired"``;
- a task whose instance is gone (left, timed out of presence, or held no subscribe poll
  for ``liveness_grace_seconds``, see :meth:`TaskService.live_instances`): never started →
  taken back and dispatched again; started → terminal ``failed`` ("agent instance <id>
  went offline");
- after a restart, tasks handed out before it whose live instance reports fewer active
  tasks than it holds (:func:`reconcile`) → taken back or ``failed``;
- queued tasks of an agent with no instance online for ``orphan_queue_seconds`` → ``failed``.

Terminals are published on the task channel, so the first terminal wins there too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blocks_devnet.backend.tasks.dispatch import parse_reported_state
from blocks_devnet.backend.tasks.settings import TaskSettings
from blocks_devnet.backend.tasks.store import (
    STATE_QUEUED,
    STATE_RUNNING,
    STATE_SUBMITTED,
    TaskRecord,
)
from blocks_network.protocol.constants import (
    COMPLETION_REASON_DURATION_EXPIRED,
    TASK_KIND_PIPE,
    TASK_STATE_COMPLETED,
    TASK_STATE_FAILED,
)

if TYPE_CHECKING:
    from blocks_devnet.backend.tasks.service import TaskService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fail:
    """End the task ``failed`` with ``error``."""

    error: str


@dataclass(frozen=True)
class Expire:
    """Send ExpireTask to the task's instance (first step for a pipe past its deadline)."""


@dataclass(frozen=True)
class CompleteExpired:
    """End the pipe ``completed`` with ``completionReason: duration_expired``."""


@dataclass(frozen=True)
class Redispatch:
    """Take the task back from an instance that never started it and queue it again."""


Action = Fail | Expire | CompleteExpired | Redispatch


def decide(
    record: TaskRecord,
    now_ms: int,
    present: frozenset[str] | None,
    settings: TaskSettings,
    *,
    agent_empty_since_ms: int | None = None,
) -> Action | None:
    """What the safety net does about one active task right now (None: nothing).

    ``present`` is the set of instance ids on the agent's control channel, or None when
    presence cannot be trusted yet (just after a start). ``agent_empty_since_ms`` is when
    the agent was first seen with no instance at all (for queued tasks).
    """
    if record.state == STATE_QUEUED:
        orphan_ms = int(settings.orphan_queue_seconds * 1000)
        orphaned = (
            present is not None
            and not present
            and agent_empty_since_ms is not None
            and now_ms - agent_empty_since_ms >= orphan_ms
        )
        if orphaned:
            return Fail(
                f"no instance of agent {record.agent_name!r} came online to take the "
                "queued task; start the agent and send the task again"
            )
        return None
    if record.instance_id is None:
        return None
    if present is not None and record.instance_id not in present:
        if record.state == STATE_SUBMITTED:
            return Redispatch()  # no ``running`` from it: nobody started the task
        return Fail(f"agent instance {record.instance_id} went offline")
    if record.task_kind == TASK_KIND_PIPE:
        deadline = record.duration_expires_at_ms
        if deadline is None or now_ms < deadline:
            return None
        if record.expire_sent_ms is None:
            return Expire()
        if now_ms - record.expire_sent_ms >= int(settings.expire_grace_seconds * 1000):
            return CompleteExpired()
        return None
    since = record.dispatched_ms if record.dispatched_ms is not None else record.created_ms
    if now_ms - since > record.max_running_ms:
        seconds = record.max_running_ms // 1000
        return Fail(
            f"task exceeded the agent's maxRunningTimeSec ({seconds} s) without a terminal; "
            "the instance may be stuck"
        )
    return None


def reconcile(
    inherited: Sequence[TaskRecord],
    held: int,
    reported_active: int | None,
    since_ms: int | None,
    now_ms: int,
    grace_ms: int,
) -> tuple[int | None, list[tuple[TaskRecord, Action]]]:
    """What to do about tasks handed to a live instance before the network (re)started.

    ``inherited`` are those tasks, ``held`` every task we count against the instance and
    ``reported_active`` the ``activeTasks`` of its presence state (None: not announced
    yet, nothing is decided). The state carries a count, not task ids (§9.2), so: when the
    instance reports fewer tasks than it holds for ``grace_ms`` (since ``since_ms``, when
    that was first seen), a report of 0 takes back every inherited task it never started
    and fails the started ones; a smaller shortfall fails that many of the inherited
    started tasks, oldest start first (a lost terminal is most likely the oldest task's),
    and takes nothing back (any of them may be the one it still runs).
    Returns the new ``since_ms`` (None when nothing is amiss or it was acted on) and the
    actions.
    """
    if not inherited or reported_active is None or reported_active >= held:
        return None, []
    if since_ms is None:
        since_ms = now_ms
    if now_ms - since_ms < grace_ms:
        return since_ms, []
    if reported_active == 0:
        return None, [
            (record, Redispatch() if record.state == STATE_SUBMITTED else _unreported(record))
            for record in inherited
        ]
    started = sorted(
        (r for r in inherited if r.state == STATE_RUNNING),
        key=lambda r: (r.started_ms or 0, r.task_id),
    )
    return None, [(record, _unreported(record)) for record in started[: held - reported_active]]


def _unreported(record: TaskRecord) -> Fail:
    return Fail(
        f"agent instance {record.instance_id} no longer reports the task after the network "
        "restarted (its terminal was lost); send the task again"
    )


class Scanner:
    """Runs :func:`decide` over every active task on a timer (see module docstring)."""

    def __init__(
        self,
        service: TaskService,
        *,
        clock_ms: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._monotonic = monotonic
        self._started = monotonic()
        #: (environment, agent_id) → when the agent was first seen with no instance.
        self._empty_since: dict[tuple[str, str], int] = {}
        #: instance id → when it was first seen reporting fewer tasks than it holds.
        self._short_since: dict[str, int] = {}

    def restart_clock(self) -> None:
        """Start the presence grace period now (called when the service starts)."""
        self._started = self._monotonic()

    async def run(self) -> None:
        """Scan until cancelled; one failing scan is logged and the next one runs."""
        while True:
            await asyncio.sleep(self._service.settings.scan_interval_seconds)
            try:
                self.scan()
            except Exception:
                logger.exception("task scan failed")

    def scan(self) -> int:
        """One pass; returns how many actions were taken."""
        service = self._service
        settings = service.settings
        now_ms = self._clock_ms()
        trust_presence = self._monotonic() - self._started >= settings.offline_startup_grace_seconds
        liveness_cache: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}
        seen_agents: set[tuple[str, str]] = set()
        taken = 0
        #: (environment, agent_id, instance) → its inherited tasks, when it is live.
        inherited: dict[tuple[str, str, str], list[TaskRecord]] = {}
        for record in service.store.active():
            key = (record.environment, record.agent_id)
            if key not in liveness_cache:
                liveness_cache[key] = service.instance_liveness(*key)
            live, dead = liveness_cache[key]
            present: frozenset[str] | None = None
            if trust_presence:
                present = live
                seen_agents.add(key)
                if present:
                    self._empty_since.pop(key, None)
                else:
                    self._empty_since.setdefault(key, now_ms)
            elif record.instance_id in dead:
                # Seen polling since the start, then stopped: evidence, grace or not.
                present = live
            action = decide(
                record, now_ms, present, settings, agent_empty_since_ms=self._empty_since.get(key)
            )
            if action is None:
                if record.instance_id in live and service.ledger.is_inherited(record.task_id):
                    inherited.setdefault((*key, record.instance_id), []).append(record)
                continue
            taken += 1
            self._apply(record, action, now_ms)
        taken += self._reconcile(inherited, now_ms)
        for key in list(self._empty_since):
            if key not in seen_agents:
                del self._empty_since[key]
        service.tokens.revoke_due(now_ms)
        service.pump_all()
        return taken

    def _reconcile(
        self, inherited: dict[tuple[str, str, str], list[TaskRecord]], now_ms: int
    ) -> int:
        service = self._service
        grace_ms = int(service.settings.liveness_grace_seconds * 1000)
        taken = 0
        short_since: dict[str, int] = {}
        for (environment, agent_id, instance_id), records in inherited.items():
            reported = parse_reported_state(
                service.instance_state(environment, agent_id, instance_id)
            )
            since, actions = reconcile(
                records,
                len(service.ledger.inflight(instance_id)),
                reported.active_tasks,
                self._short_since.get(instance_id),
                now_ms,
                grace_ms,
            )
            if since is not None:
                short_since[instance_id] = since
            for record, action in actions:
                taken += 1
                self._apply(record, action, now_ms)
        self._short_since = short_since
        return taken

    def _apply(self, record: TaskRecord, action: Action, now_ms: int) -> None:
        service = self._service
        if isinstance(action, Redispatch):
            if service.redispatch(record):
                logger.info("task %s was never started: dispatching it again", record.task_id)
        elif isinstance(action, Fail):
            logger.info("safety net fails task %s: %s", record.task_id, action.error)
            service.publish_terminal(record, TASK_STATE_FAILED, error=action.error)
        elif isinstance(action, Expire):
            logger.info("pipe task %s reached its duration: sending ExpireTask", record.task_id)
            service.send_expire(record, now_ms)
        else:
            logger.info("pipe task %s expired without a terminal: completing it", record.task_id)
            service.publish_terminal(
                record,
                TASK_STATE_COMPLETED,
                completion_reason=COMPLETION_REASON_DURATION_EXPIRED,
            )
