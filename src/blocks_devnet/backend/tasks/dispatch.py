"""Which agent instance takes a task, and handing it over with a StartTask.

The choice is pure: :func:`instance_views` turns the instances' presence state on the
control channel (protocol.md §9.2) plus our own in-flight counts into
:class:`InstanceView` rows, and :func:`choose_instance` picks the least-loaded one with free
capacity that speaks the task's protocol version. The only I/O here is
:func:`publish_start_task` / :func:`publish_control`, which publish as the backend.

Load is counted from what *we* dispatched (presence state lags behind): a task counts
against its instance from StartTask until its terminal. A slot freed by a terminal stays
"cooling" until the instance's reported ``activeTasks`` confirms it (or a short grace
passes), so the next StartTask never beats the instance's own bookkeeping and gets
refused with ``agent_at_capacity``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from blocks_devnet.backend import grants
from blocks_devnet.backend.context import BackendContext
from blocks_devnet.backend.tasks.store import TaskRecord
from blocks_network.protocol.channels import control_channel
from blocks_network.protocol.constants import DEFAULT_CONCURRENCY, TASK_KIND_PIPE
from blocks_network.protocol.control import StartTask, targeted_control_meta

#: How long a freed slot waits for the instance's presence state to confirm it.
DEFAULT_RELEASE_GRACE_SECONDS = 2.0
#: How long a subscriber may hold no poll, an instance report fewer tasks than it held
#: before a restart, or announce no state while holding such tasks, before the network
#: acts on it (a live agent polls again at once, and announces its state on reconnect).
DEFAULT_LIVENESS_GRACE_SECONDS = 4.0
#: Extra minutes a write token outlives the task's own deadline.
TOKEN_MARGIN_MINUTES = 10


@dataclass(frozen=True)
class InstanceView:
    """One live instance as the dispatcher sees it.

    ``load`` counts tasks held against the instance; ``concurrency`` 0 means unlimited;
    ``protocol_versions`` None means the instance did not announce any (accepted, like a
    StartTask without a version).
    """

    instance_id: str
    load: int
    concurrency: int
    protocol_versions: tuple[str, ...] | None = None

    def has_capacity(self) -> bool:
        return self.concurrency == 0 or self.load < self.concurrency

    def supports(self, protocol_version: str) -> bool:
        return self.protocol_versions is None or protocol_version in self.protocol_versions

    def free_slots(self) -> float:
        return math.inf if self.concurrency == 0 else self.concurrency - self.load


def choose_instance(
    instances: Iterable[InstanceView], protocol_version: str
) -> InstanceView | None:
    """The least-loaded instance with free capacity that speaks ``protocol_version``.

    Ties go to the instance with more free slots, then to the smaller instance id, so the
    choice is deterministic. Returns None when no instance can take the task.
    """
    candidates = [i for i in instances if i.supports(protocol_version) and i.has_capacity()]
    if not candidates:
        return None
    return min(candidates, key=lambda i: (i.load, -i.free_slots(), i.instance_id))


@dataclass(frozen=True)
class ReportedState:
    """What an instance announced in its presence state (absent fields are None)."""

    active_tasks: int | None = None
    concurrency: int | None = None
    protocol_versions: tuple[str, ...] | None = None


def _non_negative_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    # An int is checked apart: math.isfinite cannot convert a huge one to a float.
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


def parse_reported_state(state: Mapping[str, Any] | None) -> ReportedState:
    """Read ``activeTasks``, ``concurrency`` and ``protocolVersions`` from a presence
    state; ill-typed fields count as not announced."""
    if not state:
        return ReportedState()
    versions = state.get("protocolVersions")
    parsed_versions: tuple[str, ...] | None = None
    if isinstance(versions, list) and all(isinstance(v, str) for v in versions):
        parsed_versions = tuple(versions)
    return ReportedState(
        active_tasks=_non_negative_int(state.get("activeTasks")),
        concurrency=_non_negative_int(state.get("concurrency")),
        protocol_versions=parsed_versions,
    )


class CapacityLedger:
    """Tasks we handed to each instance and not yet seen end; no I/O.

    ``clock`` (monotonic seconds) is injectable for unit tests.
    """

    def __init__(
        self,
        *,
        release_grace_seconds: float = DEFAULT_RELEASE_GRACE_SECONDS,
        unannounced_grace_seconds: float = DEFAULT_LIVENESS_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.release_grace_seconds = release_grace_seconds
        self.unannounced_grace_seconds = unannounced_grace_seconds
        self._clock = clock
        self._inflight: dict[str, set[str]] = {}
        self._owner: dict[str, str] = {}
        self._cooling: dict[str, list[float]] = {}
        #: Tasks handed out before this start (rebuilt from the database): their
        #: instances may have lost them while the network was down.
        self._inherited: set[str] = set()
        #: instance → since when it holds inherited tasks and has announced no state.
        self._unannounced_since: dict[str, float] = {}

    def assign(self, instance_id: str, task_id: str, *, inherited: bool = False) -> None:
        self._inflight.setdefault(instance_id, set()).add(task_id)
        self._owner[task_id] = instance_id
        if inherited:
            self._inherited.add(task_id)

    def is_inherited(self, task_id: str) -> bool:
        return task_id in self._inherited

    def release(self, task_id: str, *, cool: bool = True) -> str | None:
        """Stop counting ``task_id``; returns its instance (None if it was not counted).

        With ``cool`` the freed slot waits for confirmation (see module docstring).
        """
        instance_id = self._owner.pop(task_id, None)
        if instance_id is None:
            return None
        self._inherited.discard(task_id)
        tasks = self._inflight.get(instance_id)
        if tasks is not None:
            tasks.discard(task_id)
            if not tasks:
                del self._inflight[instance_id]
        if cool and self.release_grace_seconds > 0:
            self._cooling.setdefault(instance_id, []).append(self._clock())
        return instance_id

    def confirming_slots(self, views: Iterable[InstanceView]) -> int:
        """Slots of these instances (as :meth:`load` just counted them) that are full only
        by freed slots awaiting confirmation: a task queued now gets one within the grace."""
        total = 0
        for view in views:
            cooling = len(self._cooling.get(view.instance_id, ()))
            if cooling and view.concurrency > 0:
                held = view.load - cooling
                total += max(0, min(cooling, view.concurrency - held))
        return total

    def inflight(self, instance_id: str) -> frozenset[str]:
        return frozenset(self._inflight.get(instance_id, ()))

    def _stale_inherited(self, instance_id: str, tasks: Iterable[str]) -> int:
        """How many inherited tasks of a silent instance no longer count (0 in the grace)."""
        inherited = len(self._inherited.intersection(tasks))
        if not inherited:
            self._unannounced_since.pop(instance_id, None)
            return 0
        now = self._clock()
        since = self._unannounced_since.setdefault(instance_id, now)
        return inherited if now - since >= self.unannounced_grace_seconds else 0

    def instances(self) -> list[str]:
        """Instances holding at least one task."""
        return list(self._inflight)

    def load(self, instance_id: str, reported_active: int | None) -> int:
        """Tasks held against the instance, plus freed slots not yet confirmed.

        Inherited tasks stop counting once the instance has announced no state
        (``reported_active`` None, as just after a restart) for
        ``unannounced_grace_seconds``: they may be long gone, and only a StartTask wakes an
        instance that announces its state after its first answered poll.
        """
        tasks = self._inflight.get(instance_id, ())
        held = len(tasks)
        if self._inherited:
            if reported_active is None:
                held -= self._stale_inherited(instance_id, tasks)
            else:
                self._unannounced_since.pop(instance_id, None)
        cooling = self._cooling.get(instance_id)
        if cooling:
            horizon = self._clock() - self.release_grace_seconds
            cooling[:] = [t for t in cooling if t > horizon]
            if reported_active is not None and reported_active <= held:
                cooling.clear()
            if not cooling:
                del self._cooling[instance_id]
        return held + len(self._cooling.get(instance_id, ()))


def instance_views(
    states: Mapping[str, Mapping[str, Any] | None],
    ledger: CapacityLedger,
    *,
    default_concurrency: int = DEFAULT_CONCURRENCY,
) -> list[InstanceView]:
    """Views of the instances present on a control channel (``uuid → presence state``).

    An instance that has not announced its concurrency yet gets ``default_concurrency``
    (the agent's registered value).
    """
    views = []
    for instance_id, state in states.items():
        reported = parse_reported_state(state)
        concurrency = (
            reported.concurrency if reported.concurrency is not None else default_concurrency
        )
        views.append(
            InstanceView(
                instance_id=instance_id,
                load=ledger.load(instance_id, reported.active_tasks),
                concurrency=concurrency,
                protocol_versions=reported.protocol_versions,
            )
        )
    return views


# --- handing a task over (I/O) --------------------------------------------------------------


def write_token_ttl_minutes(record: TaskRecord) -> int:
    """A write token lives as long as the task may: its duration or maxRunningTime."""
    if record.task_kind == TASK_KIND_PIPE and record.duration is not None:
        minutes = record.duration
    else:
        minutes = math.ceil(record.max_running_ms / 60_000)
    return max(grants.TASK_TOKEN_TTL_MINUTES, minutes + TOKEN_MARGIN_MINUTES)


def start_task_wire(record: TaskRecord, *, write_token: str, control_token: str) -> dict[str, Any]:
    """The StartTask for ``record`` on the wire (every §3.1 field the task has).

    The stored request parts are already wire-shaped, so they are put in as they are.
    """
    parts = record.request_parts
    message = StartTask(
        task_id=record.task_id,
        agent_name=record.agent_name,
        owner_id=record.owner_id,
        org_id=record.org_id,
        caller_claims=record.caller_claims,
        request_summary={
            "partCount": len(parts),
            "partIds": [p["partId"] for p in parts if isinstance(p.get("partId"), str)],
        },
        task_kind="pipe" if record.task_kind == TASK_KIND_PIPE else "request",
        duration=record.duration,
        duration_expires_at_ms=record.duration_expires_at_ms,
        consumer_public_key=record.consumer_public_key,
        has_stream=record.has_stream,
        write_token=write_token,
        control_token=control_token,
        protocol_version=record.protocol_version,
    )
    wire = message.to_wire()
    wire["requestParts"] = parts
    return wire


def publish_start_task(ctx: BackendContext, record: TaskRecord, instance_id: str) -> str:
    """Publish StartTask to ``instance_id`` on the agent's control channel, with a fresh
    write token (returned, so it can be revoked at the terminal) and a control token
    (reused while it has half its lifetime left)."""
    keyset = ctx.keyset_for_environment(record.environment)
    write_token = grants.task_write_token(
        keyset, record.org_id, record.task_id, instance_id, write_token_ttl_minutes(record)
    )
    access = ctx.realtime.access
    control_token = grants.reusable_control_token(
        keyset,
        record.agent_id,
        instance_id,
        lambda token: access.is_revoked(keyset.subscribe_key, token),
    )
    message = start_task_wire(record, write_token=write_token, control_token=control_token)
    ctx.publish(
        record.environment,
        control_channel(record.agent_id),
        message,
        meta=targeted_control_meta(instance_id),
        store=False,
    )
    return write_token


def publish_control(ctx: BackendContext, record: TaskRecord, message: dict[str, Any]) -> None:
    """Send a control message about ``record`` to the instance that holds it."""
    if record.instance_id is None:
        raise ValueError(f"task {record.task_id} was never dispatched")
    ctx.publish(
        record.environment,
        control_channel(record.agent_id),
        message,
        meta=targeted_control_meta(record.instance_id),
        store=False,
    )
