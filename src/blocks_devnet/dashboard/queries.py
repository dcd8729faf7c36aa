"""What the dashboard shows, read as the signed-in principal through the API's own functions.

Tasks come from the task service (``list_tasks``, ``visible_task``: the ListTasks and
GetTask code), agents from the registry's ``list``/``visible_to``, instances from presence
as the dispatcher sees them; summaries use the store's :func:`visible_clause`. Nothing
here decides access on its own.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from blocks_devnet.backend.agent_record import AgentRecord
from blocks_devnet.backend.context import BackendContext
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.registry import MAX_PAGE_SIZE
from blocks_devnet.backend.tasks.params import ListTasksParams
from blocks_devnet.backend.tasks.store import TaskRecord, visible_clause
from blocks_devnet.backend.tasks.views import status_channel

#: Rows on one tasks page (the browser never holds more).
PAGE_ROWS: Final = 25
#: Agents listed at most (registry pages of 100).
MAX_AGENTS: Final = 500
#: The throughput chart: this many buckets of this many seconds.
CHART_BUCKETS: Final = 20
CHART_BUCKET_SECONDS: Final = 30
#: Events of one task read for its page (the page shows the latest of them).
MAX_TIMELINE_EVENTS: Final = 2000
#: Failures listed on the overview.
RECENT_FAILURES: Final = 5


@dataclass(frozen=True)
class InstanceView:
    instance_id: str
    live: bool
    active_tasks: int | None
    concurrency: int | None
    protocol_version: str | None
    started_at_ms: int | None


@dataclass(frozen=True)
class AgentView:
    """An agent and its instances. Instances are listed for agents of the viewer's own
    organisation only (presence on an agent's control channel is theirs); for another
    organisation's public agent only the count the registry also reports is known."""

    record: AgentRecord
    online: int
    instances: list[InstanceView]
    own: bool


@dataclass(frozen=True)
class Bucket:
    start_ms: int
    finished: int
    mean_latency_ms: float | None


@dataclass(frozen=True)
class TaskEvent:
    timetoken: int
    message: Any

    @property
    def time_ms(self) -> int:
        return self.timetoken // 10_000

    @property
    def type(self) -> str:
        kind = self.message.get("type") if isinstance(self.message, dict) else None
        return kind if isinstance(kind, str) else "message"


@dataclass(frozen=True)
class Artifact:
    timetoken: int
    ref: dict[str, Any]

    @property
    def mime_type(self) -> str:
        mime = self.ref.get("mimeType")
        return mime if isinstance(mime, str) else "application/octet-stream"

    @property
    def file_name(self) -> str | None:
        name = self.ref.get("fileName")
        return name if isinstance(name, str) else None

    def task_file(self, task_channel: str) -> tuple[str, str] | None:
        """``(fileId, fileName)`` of a file artifact stored on the task's own channel (where
        the network stores them); None otherwise: a ref naming another channel is never
        followed, so an agent cannot point a viewer at someone else's file."""
        file_id, name = self.ref.get("fileId"), self.ref.get("fileName")
        if (
            self.ref.get("kind") != "file"
            or self.ref.get("channel") != task_channel
            or not isinstance(file_id, str)
            or not isinstance(name, str)
        ):
            return None
        return file_id, name

    def inline_bytes(self) -> bytes | None:
        """The artifact's bytes when it is inline and well formed, else None."""
        data = self.ref.get("data")
        if self.ref.get("kind") != "inline" or not isinstance(data, str):
            return None
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _view(ctx: BackendContext, principal: Principal, agent: AgentRecord) -> AgentView:
    live, dead = ctx.tasks.instance_liveness(agent.environment, agent.agent_id)
    online = 0 if agent.forced_offline else len(live)
    if agent.org_id != principal.org_id:
        return AgentView(agent, online, [], own=False)
    views = []
    for instance_id in sorted(live | dead):
        state = ctx.tasks.instance_state(agent.environment, agent.agent_id, instance_id)
        version = state.get("preferredProtocolVersion")
        views.append(
            InstanceView(
                instance_id=instance_id,
                live=instance_id in live,
                active_tasks=_int_or_none(state.get("activeTasks")),
                concurrency=_int_or_none(state.get("concurrency")),
                protocol_version=version if isinstance(version, str) else None,
                started_at_ms=_int_or_none(state.get("startedAt")),
            )
        )
    return AgentView(agent, online, views, own=True)


def agents(ctx: BackendContext, principal: Principal) -> list[AgentView]:
    """Agents the principal may see (as the registry lists them), with their instances."""
    found: list[AgentRecord] = []
    cursor: str | None = None
    while len(found) < MAX_AGENTS:
        page = ctx.registry.list(principal, cursor=cursor, limit=MAX_PAGE_SIZE)
        found.extend(page.agents)
        cursor = page.next
        if cursor is None:
            break
    return [_view(ctx, principal, record) for record in found[:MAX_AGENTS]]


def agent(ctx: BackendContext, principal: Principal, agent_name: str) -> AgentView | None:
    record = ctx.registry.get(agent_name)
    if record is None or not ctx.registry.visible_to(record, principal):
        return None
    return _view(ctx, principal, record)


def tasks_page(
    ctx: BackendContext,
    principal: Principal,
    *,
    agent_name: str | None = None,
    state: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_ROWS,
    total: bool = True,
) -> dict[str, Any]:
    """One ListTasks page (``{tasks, next, totalCount}``; no ``totalCount`` and no count
    query when ``total`` is False); raises its BackendError for a bad cursor or state,
    exactly as the RPC does."""
    params = ListTasksParams(agent_name=agent_name, state=state, limit=limit, cursor=cursor)
    return ctx.tasks.list_tasks(principal, params, total=total)


def task(ctx: BackendContext, principal: Principal, task_id: str) -> TaskRecord:
    """The task as GetTask finds it; raises TASK_NOT_FOUND for one the principal may not see."""
    return ctx.tasks.visible_task(principal, task_id)


def recent_failures(ctx: BackendContext, principal: Principal) -> list[dict[str, Any]]:
    """The newest failed tasks (ListTasks objects, with ``error``)."""
    # Rendered live every 0.5 s per viewer: the exact total it does not show cost ~9 ms.
    page = tasks_page(ctx, principal, state="failed", limit=RECENT_FAILURES, total=False)
    tasks: list[dict[str, Any]] = page["tasks"]
    return tasks


def throughput(ctx: BackendContext, principal: Principal, now_ms: int) -> list[Bucket]:
    """Tasks finished per bucket and their mean round trip (created → ended), oldest first."""
    width = CHART_BUCKET_SECONDS * 1000
    end = now_ms - now_ms % width + width
    start = end - CHART_BUCKETS * width
    visible, params = visible_clause(principal.user_id, principal.org_id)
    rows = ctx.db.query(
        "SELECT (ended_ms - ?) / ? AS bucket, COUNT(*) AS n, AVG(ended_ms - created_ms) AS rtt"
        f" FROM tasks WHERE {visible} AND created_ms >= ? AND ended_ms >= ?"
        " GROUP BY bucket",
        [start, width, *params, start - width * CHART_BUCKETS, start],
    )
    by_bucket = {int(row["bucket"]): row for row in rows}
    buckets = []
    for index in range(CHART_BUCKETS):
        row = by_bucket.get(index)
        buckets.append(
            Bucket(
                start_ms=start + index * width,
                finished=0 if row is None else int(row["n"]),
                mean_latency_ms=None if row is None else float(row["rtt"]),
            )
        )
    return buckets


def timeline(ctx: BackendContext, record: TaskRecord) -> list[TaskEvent]:
    """The task channel's events, oldest first (what a consumer's history sees), at most
    :data:`MAX_TIMELINE_EVENTS` (a chatty task's first ones; its terminal is in the record)."""
    subscribe_key = ctx.tasks.subscribe_key_of(record.environment)
    channels = [status_channel(record)]
    events: list[TaskEvent] = []
    after = 0
    while len(events) < MAX_TIMELINE_EVENTS:
        messages, truncated = ctx.realtime.messages.collect(subscribe_key, channels, after)
        for logged in messages:
            envelope = json.loads(logged.envelope)
            events.append(TaskEvent(timetoken=logged.timetoken, message=envelope.get("d")))
        if not truncated or not messages:
            break
        after = messages[-1].timetoken
    return events[:MAX_TIMELINE_EVENTS]


def artifact_bytes(ctx: BackendContext, record: TaskRecord, artifact: Artifact) -> bytes | None:
    """The artifact's bytes: inline, or the file on the task's channel (None if gone)."""
    inline = artifact.inline_bytes()
    if inline is not None:
        return inline
    channel = status_channel(record)
    found = artifact.task_file(channel)
    if found is None:
        return None
    subscribe_key = ctx.tasks.subscribe_key_of(record.environment)
    stored = ctx.realtime.file_store.get_file(subscribe_key, channel, *found)
    return None if stored is None else stored.data


def artifacts(events: list[TaskEvent]) -> list[Artifact]:
    found = []
    for event in events:
        ref = event.message.get("artifactRef") if event.type == "artifact" else None
        if isinstance(ref, dict):
            found.append(Artifact(timetoken=event.timetoken, ref=ref))
    return found


#: Latest frames shown per stream, and how much of each.
STREAM_LATEST: Final = 5
STREAM_FRAME_CHARS: Final = 200


@dataclass(frozen=True)
class StreamView:
    stream_id: str
    frames: int
    size: int
    latest: list[str]
    ended: bool


def _frame_payload(frame: dict[str, Any]) -> tuple[int, str]:
    """``(bytes, text shown)`` of one ``stream_data`` or ``stream_events`` frame."""
    if frame.get("type") == "stream_events":
        events = frame.get("events")
        text = json.dumps(events, separators=(",", ":"))
        return len(text.encode()), text
    chunks = [c for c in frame.get("chunks") or [] if isinstance(c, str)]
    if frame.get("encoding") == "base64":
        size = sum(len(c) * 3 // 4 for c in chunks)
    else:
        size = sum(len(c.encode()) for c in chunks)
    return size, "".join(chunks)


def streams(ctx: BackendContext, record: TaskRecord, events: list[TaskEvent]) -> list[StreamView]:
    """The task's streams (from its ``stream_started`` events) with the frames the network
    still holds: counts, bytes and the latest few."""
    channels: dict[str, str] = {}
    for event in events:
        declared = event.message.get("streams") if event.type == "progress" else None
        if isinstance(declared, dict):
            for stream_id, info in declared.items():
                if isinstance(info, dict) and isinstance(info.get("channel"), str):
                    channels[str(stream_id)] = info["channel"]
    subscribe_key = ctx.tasks.subscribe_key_of(record.environment)
    views = []
    for stream_id, channel in channels.items():
        messages, _ = ctx.realtime.messages.collect(subscribe_key, [channel], 0, limit=10_000)
        frames, size, latest, ended = 0, 0, [], False
        for logged in messages:
            frame = json.loads(logged.envelope).get("d")
            if not isinstance(frame, dict):
                continue
            if frame.get("type") == "stream_end":
                ended = True
                continue
            frames += 1
            frame_size, text = _frame_payload(frame)
            size += frame_size
            latest.append(text[:STREAM_FRAME_CHARS])
        views.append(StreamView(stream_id, frames, size, latest[-STREAM_LATEST:], ended))
    return views
