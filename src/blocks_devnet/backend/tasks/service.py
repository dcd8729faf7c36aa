"""The task service: create tasks, hand them to agent instances, follow them to a terminal.

Everything runs on the server's event loop; operations are synchronous (short SQLite
statements and in-process publishes), so no two of them interleave. State lives in SQLite
(:mod:`.store`); in memory there are only the per-agent queues of waiting tasks and the
in-flight counts per instance (:class:`~.dispatch.CapacityLedger`), both rebuilt from the
database at start-up.

Lifecycle of a task (see docs/task-service.md):
``SendMessage`` → ``request`` event on the task channel → StartTask to the least-loaded
instance (``submitted``) or a place in the agent's backlog (``queued``) → ``progress
running`` from the instance (``running``) → the first ``terminal`` on the channel, from
the instance or from the backend's safety net, ends it and revokes its write/stream tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from blocks_devnet.backend import grants
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks import errors, queries
from blocks_devnet.backend.tasks.channel_sync import TaskChannelSync, is_stream_channel
from blocks_devnet.backend.tasks.dispatch import (
    CapacityLedger,
    choose_instance,
    instance_views,
    publish_control,
    publish_start_task,
    write_token_ttl_minutes,
)
from blocks_devnet.backend.tasks.params import ListTasksParams, SendMessage
from blocks_devnet.backend.tasks.scanner import Scanner
from blocks_devnet.backend.tasks.settings import TaskSettings
from blocks_devnet.backend.tasks.start_rows import StartTaskRows
from blocks_devnet.backend.tasks.store import (
    STATE_QUEUED,
    STATE_SUBMITTED,
    TaskRecord,
    TaskStore,
)
from blocks_devnet.backend.tasks.submit import build_task
from blocks_devnet.backend.tasks.tokens import TokenLedger
from blocks_devnet.backend.tasks.uploads import UploadLedger
from blocks_devnet.backend.tasks.views import send_result, status_channel
from blocks_devnet.realtime.presence import PRESENCE_SUFFIX
from blocks_network.protocol.agent_card import AgentCard
from blocks_network.protocol.channels import control_channel
from blocks_network.protocol.constants import (
    PROTOCOL_VERSION,
    TASK_KIND_PIPE,
)
from blocks_network.protocol.control import ExpireTask
from blocks_network.protocol.events import RequestEvent, TerminalEvent, task_event_meta

if TYPE_CHECKING:
    from blocks_devnet.backend.context import BackendContext
    from blocks_devnet.backend.registry import AgentRecord

logger = logging.getLogger(__name__)


class TaskService:
    """Task operations for the RPC and auth routes, plus the background safety net.

    Construct it once per network (it registers a message-log observer); call
    :meth:`start` on the running loop and :meth:`stop` at shutdown (twice is safe).
    """

    def __init__(self, ctx: BackendContext, settings: TaskSettings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or TaskSettings(
            scan_interval_seconds=ctx.config.scan_interval_seconds
        )
        self.store = TaskStore(ctx.db)
        self.tokens = TokenLedger(ctx.db, ctx.realtime.access.revoke)
        self.uploads = UploadLedger(ctx.db)
        self.ledger = CapacityLedger(
            release_grace_seconds=self.settings.release_grace_seconds,
            unannounced_grace_seconds=self.settings.liveness_grace_seconds,
        )
        #: agent name → ids of its queued tasks, oldest first.
        self._queues: dict[str, deque[str]] = {}
        self._scanner = Scanner(self)
        self._background: list[asyncio.Task[None]] = []
        self._pump_wakeup: asyncio.Event | None = None
        self._cards: dict[str, tuple[Mapping[str, Any], AgentCard]] = {}
        self._rebuild()
        ctx.realtime.messages.add_observer(TaskChannelSync(self))
        self.start_rows = StartTaskRows(ctx.realtime.messages)
        ctx.realtime.messages.add_observer(self.start_rows)
        # Stream frames are most of the traffic and buffer-only: write them in bulk.
        ctx.realtime.messages.defer_unstored_writes(is_stream_channel)
        ctx.realtime.sweeper.add("write-token rows of ended tasks", self.tokens.sweep_ended)
        if ctx.realtime.retention.seconds is not None:
            ctx.realtime.sweeper.add("task records past retention", self._sweep_past_retention)

    def _sweep_past_retention(self, limit: int) -> int:
        """Delete finished task records (and their token and stream rows) created longer
        ago than the retention."""
        retention_s = self.ctx.realtime.retention.seconds
        assert retention_s is not None
        horizon_ms = int((time.time() - retention_s) * 1000)
        task_ids = self.store.sweep_finished(horizon_ms, limit)
        self.tokens.forget_tasks(task_ids)
        return len(task_ids)

    # --- lifecycle ---------------------------------------------------------------------------

    def configure(self, settings: TaskSettings) -> None:
        """Replace the timing settings (tests shorten them); takes effect at once."""
        self.settings = settings
        self.ledger.release_grace_seconds = settings.release_grace_seconds
        self.ledger.unannounced_grace_seconds = settings.liveness_grace_seconds

    async def start(self) -> None:
        """Start the safety-net scanner and the backlog pump on the running loop."""
        if self._background:
            return
        self._pump_wakeup = asyncio.Event()
        if self._queues:
            self._pump_wakeup.set()
        self._scanner.restart_clock()
        self._background = [
            asyncio.create_task(self._scanner.run(), name="blocks-task-scanner"),
            asyncio.create_task(self._pump_forever(), name="blocks-task-pump"),
        ]

    async def stop(self) -> None:
        """Stop background work; safe to call twice."""
        tasks, self._background = self._background, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _rebuild(self) -> None:
        for record in self.store.active():
            if record.state == STATE_QUEUED:
                self._queues.setdefault(record.agent_name, deque()).append(record.task_id)
            elif record.instance_id is not None:
                self.ledger.assign(record.instance_id, record.task_id, inherited=True)

    # --- small helpers used by the other task modules ---------------------------------------

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def subscribe_key_of(self, environment: str) -> str:
        return self.ctx.keyset_for_environment(environment).subscribe_key

    def _instance_states(self, environment: str, agent_id: str) -> dict[str, dict[str, Any]]:
        """``instance id → presence state`` of the live instances on the agent's control
        channel (see :meth:`live_instances`)."""
        key = self.subscribe_key_of(environment)
        channel = control_channel(agent_id)
        presence = self.ctx.realtime.presence
        live, _ = self._liveness(key, channel)
        return {uuid: presence.get_state(key, uuid, channel) for uuid in live}

    def live_instances(self, environment: str, agent_id: str) -> frozenset[str]:
        """Instance ids present on the agent's control channel and still polling it.

        An instance that held no subscribe poll there for ``liveness_grace_seconds`` is
        dead (a killed process closes its held poll's connection) even while its presence
        has not timed out yet: it gets no task, and the scanner takes its tasks back.
        """
        return self.instance_liveness(environment, agent_id)[0]

    def instance_liveness(
        self, environment: str, agent_id: str
    ) -> tuple[frozenset[str], frozenset[str]]:
        """``(live, dead)`` instance ids among those present on the agent's control channel
        (see :meth:`live_instances`)."""
        key = self.subscribe_key_of(environment)
        live, dead = self._liveness(key, control_channel(agent_id))
        return frozenset(live), frozenset(dead)

    def _liveness(self, subscribe_key: str, channel: str) -> tuple[list[str], list[str]]:
        presence = self.ctx.realtime.presence
        grace = self.settings.liveness_grace_seconds
        live: list[str] = []
        dead: list[str] = []
        for uuid in presence.occupants(subscribe_key, channel):
            gap = presence.poll_gap(subscribe_key, channel, uuid)
            # Heartbeats only (gap None): presence timeouts decide.
            (live if gap is None or gap < grace else dead).append(uuid)
        return live, dead

    def instance_state(self, environment: str, agent_id: str, instance_id: str) -> dict[str, Any]:
        """The presence state ``instance_id`` announced on the agent's control channel."""
        key = self.subscribe_key_of(environment)
        return self.ctx.realtime.presence.get_state(key, instance_id, control_channel(agent_id))

    def availability(self, agent: AgentRecord) -> dict[str, Any]:
        """``{onlineInstances, freeSlots}`` for the registry answer (a local-network
        extension): live instances on the control channel and the tasks they could start now
        (``freeSlots`` None when an instance has unlimited concurrency)."""
        if agent.forced_offline:
            return {"onlineInstances": 0, "freeSlots": 0}
        views = instance_views(
            self._instance_states(agent.environment, agent.agent_id),
            self.ledger,
            default_concurrency=agent.scaling.concurrency,
        )
        free = sum(max(view.free_slots(), 0) for view in views)
        return {"onlineInstances": len(views), "freeSlots": None if free == math.inf else int(free)}

    def visible_task(self, principal: Principal, task_id: str) -> TaskRecord:
        """The task if ``principal`` owns it or belongs to the agent's organisation; any
        other case is the same 404, so task ids do not leak."""
        record = self.store.get(task_id)
        if record is None or not (
            record.owner_id == principal.user_id or record.agent_org_id == principal.org_id
        ):
            raise errors.task_not_found(task_id)
        return record

    def publish_event(self, record: TaskRecord, event: dict[str, Any]) -> int:
        """Publish a task event as the backend (stored, with the task-event meta)."""
        return self.ctx.publish(
            record.environment,
            status_channel(record),
            event,
            meta=task_event_meta(record.agent_name, record.task_id, record.protocol_version),
        )

    def read_token(self, record: TaskRecord, *, owner: bool = False) -> tuple[str, int]:
        """T4 and its lifetime (min). ``owner``: for the task's owner as consumer, who also
        reads the org's other task channels when the org is the owner's alone."""
        ttl = write_token_ttl_minutes(record)
        keyset = self.ctx.keyset_for_environment(record.environment)
        org_wide = owner and self.ctx.identity.sole_member_reads_org(record.org_id, record.owner_id)
        token = grants.task_read_token(
            keyset, record.org_id, record.task_id, ttl, org_wide=org_wide
        )
        return token, ttl

    # --- SendMessage -------------------------------------------------------------------------

    def send_message(self, principal: Principal, request: SendMessage) -> dict[str, Any]:
        """Create a task and dispatch or queue it; returns the SendMessage result.

        Raises BackendError: AGENT_NOT_FOUND, BillingModeMismatch, FORBIDDEN (ownerId),
        invalid params (card rules, uploads), AGENT_UNAVAILABLE (no instance online) or
        AGENT_BACKLOG_FULL. Nothing is stored when it raises.
        """
        params = request.params
        registry = self.ctx.registry
        agent = registry.get(params.agent_name)
        if agent is None or not registry.visible_to(agent, principal):
            raise errors.agent_not_found(params.agent_name)
        if params.billing_mode != agent.billing_mode:
            raise errors.billing_mode_mismatch(
                agent.agent_name, agent.billing_mode, params.billing_mode
            )
        owner_id = params.owner_id or principal.user_id
        if owner_id != principal.user_id:
            raise errors.forbidden(
                f"ownerId {owner_id!r} is not you: omit it or send your own user id "
                f"({principal.user_id!r})."
            )
        if params.idempotency_key is not None:
            existing = self.store.find_idempotent(owner_id, params.idempotency_key)
            if existing is not None:
                return self._result(existing, idempotent=True)
        if agent.forced_offline:
            raise errors.agent_unavailable(agent.agent_name, "an administrator forced it offline.")
        states = self._instance_states(agent.environment, agent.agent_id)
        if not states:
            raise errors.agent_unavailable(
                agent.agent_name,
                "no instance is online. Start the agent (e.g. `blocks-run`) and send again.",
            )
        views = instance_views(states, self.ledger, default_concurrency=agent.scaling.concurrency)
        choice = choose_instance(views, PROTOCOL_VERSION)
        if choice is None:
            if not any(view.supports(PROTOCOL_VERSION) for view in views):
                raise errors.agent_unavailable(
                    agent.agent_name,
                    f"no online instance speaks protocol version {PROTOCOL_VERSION}; upgrade its SDK.",
                )
            backlog = agent.scaling.max_pending_backlog
            # A task waiting only for a freed slot's confirmation (cooling) takes no backlog
            # place: the consumer kept within capacity, the slot frees within the grace.
            speaking = [view for view in views if view.supports(PROTOCOL_VERSION)]
            confirming = self.ledger.confirming_slots(speaking)
            if len(self._queues.get(agent.agent_name, ())) >= backlog + confirming:
                raise errors.backlog_full(agent.agent_name, backlog)
        instance_id = None if choice is None else choice.instance_id
        record = build_task(self, principal, agent, request, instance_id=instance_id)
        self._start_channels(record)
        request_event = RequestEvent(record.task_id, (), record.protocol_version).to_wire()
        request_event["requestParts"] = record.request_parts  # already wire-shaped
        self.publish_event(record, request_event)
        if record.instance_id is not None:
            self._hand_over(record, record.instance_id)
        else:
            self._queues.setdefault(record.agent_name, deque()).append(record.task_id)
            if self._pump_wakeup is not None:
                self._pump_wakeup.set()
        push_id = None if params.push_notification_config is None else f"push_{record.task_id}"
        return self._result(record, idempotent=False, push_config_id=push_id)

    def _start_channels(self, record: TaskRecord) -> None:
        # A fresh task id names a channel (and presence twin) nobody used: no reload query.
        # A task from an upload session got its id earlier: its channel is looked up as usual.
        if record.upload_session_id is not None:
            return
        messages = self.ctx.realtime.messages
        key = self.subscribe_key_of(record.environment)
        channel = status_channel(record)
        messages.start_channel(key, channel)
        messages.start_channel(key, channel + PRESENCE_SUFFIX)

    def _result(
        self, record: TaskRecord, *, idempotent: bool, push_config_id: str | None = None
    ) -> dict[str, Any]:
        keyset = self.ctx.keyset_for_environment(record.environment)
        token, _ = self.read_token(record, owner=True)  # SendMessage's caller owns the task
        return send_result(
            record,
            idempotent=idempotent,
            read_token=token,
            subscribe_key=keyset.subscribe_key,
            publish_key=keyset.publish_key,
            push_config_id=push_config_id,
        )

    # --- dispatch and backlog ----------------------------------------------------------------

    def _dispatch(self, record: TaskRecord, instance_id: str) -> None:
        """Hand a queued task to ``instance_id`` (nothing if it is no longer queued)."""
        now = self.now_ms()
        expires = None
        if record.task_kind == TASK_KIND_PIPE and record.duration is not None:
            expires = now + record.duration * 60_000
        if not self.store.mark_dispatched(record.task_id, instance_id, now, expires):
            return
        dispatched = replace(
            record,
            state=STATE_SUBMITTED,
            instance_id=instance_id,
            dispatched_ms=now,
            updated_ms=now,
            duration_expires_at_ms=expires,
        )
        self._hand_over(dispatched, instance_id)

    def redispatch(self, record: TaskRecord) -> bool:
        """Take a task its instance never started back and queue it first again; the
        instance's write token is revoked, so a late start there cannot publish anything.
        False if the task started or moved meanwhile."""
        if record.instance_id is None or not self.store.requeue(
            record.task_id, record.instance_id, self.now_ms()
        ):
            return False
        self.ledger.release(record.task_id, cool=False)
        self.tokens.revoke_write_tokens(record.task_id)
        self._queues.setdefault(record.agent_name, deque()).appendleft(record.task_id)
        if self._pump_wakeup is not None:
            self._pump_wakeup.set()
        logger.info("task %s taken back from instance %s", record.task_id, record.instance_id)
        return True

    def _hand_over(self, record: TaskRecord, instance_id: str) -> None:
        """Count the task against the instance and publish its StartTask."""
        self.ledger.assign(instance_id, record.task_id)
        token = publish_start_task(self.ctx, record, instance_id)
        self.tokens.record_write_token(
            record.task_id, self.subscribe_key_of(record.environment), token
        )
        logger.debug("task %s → instance %s", record.task_id, instance_id)

    def card_of(self, agent: AgentRecord) -> AgentCard:
        """The agent's validated card, parsed once per card version."""
        cached = self._cards.get(agent.agent_id)
        if cached is not None and cached[0] == agent.card:
            return cached[1]
        parsed = agent.parsed_card()
        self._cards[agent.agent_id] = (agent.card, parsed)
        return parsed

    def pump(self, agent_name: str) -> int:
        """Hand queued tasks of ``agent_name`` to instances with free capacity; returns how
        many were dispatched."""
        queue = self._queues.get(agent_name)
        dispatched = 0
        agent = self.ctx.registry.get(agent_name) if queue else None
        while queue:
            record = self.store.get(queue[0])
            if record is None or record.state != STATE_QUEUED:
                queue.popleft()
                continue
            if agent is None:
                queue.popleft()
                self.publish_terminal(
                    record, "failed", error=f"agent {agent_name!r} was removed from the registry"
                )
                continue
            views = instance_views(
                self._instance_states(record.environment, record.agent_id),
                self.ledger,
                default_concurrency=agent.scaling.concurrency,
            )
            choice = choose_instance(views, record.protocol_version)
            if choice is None:
                break
            queue.popleft()
            self._dispatch(record, choice.instance_id)
            dispatched += 1
        if queue is not None and not queue:
            self._queues.pop(agent_name, None)
        return dispatched

    def pump_all(self) -> int:
        return sum(self.pump(name) for name in list(self._queues))

    def queued_count(self, agent_name: str) -> int:
        return len(self._queues.get(agent_name, ()))

    async def _pump_forever(self) -> None:
        assert self._pump_wakeup is not None
        while True:
            if not self._queues:
                self._pump_wakeup.clear()
                await self._pump_wakeup.wait()
            await asyncio.sleep(self.settings.pump_interval_seconds)
            try:
                self.pump_all()
            except Exception:
                logger.exception("backlog pump failed")

    # --- terminals ---------------------------------------------------------------------------

    def publish_terminal(
        self,
        record: TaskRecord,
        state: str,
        *,
        error: str | None = None,
        reason: str | None = None,
        completion_reason: str | None = None,
    ) -> None:
        """Publish a terminal as the backend; the channel observer then records it (the
        first terminal on the channel wins, whoever sent it)."""
        event = TerminalEvent(
            record.task_id,
            state,
            error=error,
            reason=reason,
            completion_reason=completion_reason,
            protocol_version=record.protocol_version,
        )
        self.publish_event(record, event.to_wire())

    def record_terminal(self, record: TaskRecord, event: TerminalEvent) -> None:
        """Called by the channel observer for a terminal event (first one wins)."""
        now = self.now_ms()
        finished = self.store.finish(
            record.task_id,
            event.state,
            now,
            error=event.error,
            reason=event.reason,
            completion_reason=event.completion_reason,
        )
        if finished is None:
            return
        self.ledger.release(record.task_id)
        queue = self._queues.get(record.agent_name)
        if queue is not None and record.task_id in queue:
            queue.remove(record.task_id)
        self.start_rows.on_terminal(record.task_id)
        self.tokens.on_terminal(
            record.task_id,
            now,
            int(self.settings.stream_revoke_delay_seconds * 1000),
            has_streams=record.has_stream,
        )
        logger.debug("task %s ended %s", record.task_id, event.state)
        if self._queues.get(record.agent_name):
            # Not inside the publish that reported the terminal: dispatch on the next turn.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(self.pump, record.agent_name)

    def send_expire(self, record: TaskRecord, now_ms: int) -> None:
        """Ask the instance to end a pipe task whose duration ran out."""
        message = ExpireTask(
            record.task_id, agent_name=record.agent_name, protocol_version=record.protocol_version
        )
        publish_control(self.ctx, record, message.to_wire())
        self.store.mark_expire_sent(record.task_id, now_ms)

    # --- reads (see queries.py) ---------------------------------------------------------------

    def get_task(self, principal: Principal, task_id: str) -> dict[str, Any]:
        """GetTask: ``{"task": {...}}``; TASK_NOT_FOUND unless the caller may see the task."""
        return queries.get_task(self, principal, task_id)

    def list_tasks(
        self, principal: Principal, params: ListTasksParams, *, total: bool = True
    ) -> dict[str, Any]:
        """ListTasks: the caller's tasks and its organisation's agents' tasks, newest first
        (``total=False``: without the exact ``totalCount``, for lists that show none)."""
        return queries.list_tasks(self, principal, params, total=total)

    def read_token_for(self, principal: Principal, task_id: str, role: str) -> dict[str, Any]:
        """``{pamToken, channel, ttlMinutes}`` for the owner or the agent's organisation;
        anyone else gets TASK_NOT_FOUND (404), as for a missing task."""
        return queries.read_token_for(self, principal, task_id, role)

    def anon_read_token_for(self, task_id: str, fingerprint: str) -> dict[str, Any]:
        """A read token for the anonymous submitter of a free task of a public agent;
        anything else is 403 ANON_TASK_ACCESS_DENIED."""
        return queries.anon_read_token_for(self, task_id, fingerprint)
