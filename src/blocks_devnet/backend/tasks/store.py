"""Task records in SQLite: one row per task, kept in step with the task channel.

Every write is a single statement (or one transaction), so a task is either wholly
recorded or absent. The first terminal wins: :meth:`TaskStore.finish` only changes a row
that is not terminal yet. Runs on the server's event loop like the rest of the database.

Records live in memory (write-through cache) and, once the database batches its commits,
reach SQLite write-behind: a changed record is written as it then is right before the next
commit (or before any statement naming ``tasks`` runs), so a task created, started and
finished within one event-loop turn costs one INSERT. Nothing is lost that anyone was told
of: every answer and every delivered message waits for the commit that covers the writes
before it (``blocks_devnet.commit_gate``), a dispatch included, before its StartTask.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from blocks_devnet.store.cursor import decode_cursor, encode_cursor
from blocks_devnet.store.database import Database
from blocks_network.protocol.constants import TERMINAL_STATES

#: States a task moves through; ``queued`` waits for capacity, ``submitted`` was handed
#: to an instance (StartTask published), ``running`` was reported by the instance.
STATE_QUEUED = "queued"
STATE_SUBMITTED = "submitted"
STATE_RUNNING = "running"
ACTIVE_STATES = (STATE_QUEUED, STATE_SUBMITTED, STATE_RUNNING)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    agent_name TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_org_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    caller_claims TEXT NOT NULL,
    billing_mode TEXT NOT NULL,
    environment TEXT NOT NULL,
    state TEXT NOT NULL,
    task_kind TEXT NOT NULL,
    duration INTEGER,
    duration_expires_at_ms INTEGER,
    has_stream INTEGER NOT NULL,
    request_parts TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    consumer_public_key TEXT,
    idempotency_key TEXT,
    upload_session_id TEXT,
    fingerprint TEXT,
    max_running_ms INTEGER NOT NULL,
    instance_id TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    dispatched_ms INTEGER,
    started_ms INTEGER,
    ended_ms INTEGER,
    expire_sent_ms INTEGER,
    error TEXT,
    reason TEXT,
    completion_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency
    ON tasks (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner_id, created_ms);
CREATE INDEX IF NOT EXISTS tasks_by_agent_org ON tasks (agent_org_id, created_ms);
CREATE INDEX IF NOT EXISTS tasks_by_created ON tasks (created_ms);
-- Per-agent task lists and counts (ListTasks agentName, the dashboard) at 100,000 tasks.
CREATE INDEX IF NOT EXISTS tasks_by_agent ON tasks (agent_name, created_ms);
"""

_JSON_COLUMNS = ("caller_claims", "request_parts")
_BOOL_COLUMNS = ("has_stream",)


def new_task_id() -> str:
    """A fresh task id, safe as a channel segment and a stream-id prefix."""
    return f"t_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class TaskRecord:
    """One task as the backend knows it (times are epoch milliseconds)."""

    task_id: str
    agent_name: str
    agent_id: str
    #: The organisation that owns the agent (its members may see the task).
    agent_org_id: str
    #: The task channel's org: ``u.{org_id}.{task_id}``.
    org_id: str
    owner_id: str
    caller_claims: dict[str, Any]
    billing_mode: str
    environment: str
    state: str
    task_kind: str
    has_stream: bool
    request_parts: list[dict[str, Any]]
    protocol_version: str
    max_running_ms: int
    created_ms: int
    updated_ms: int
    duration: int | None = None
    duration_expires_at_ms: int | None = None
    consumer_public_key: str | None = None
    idempotency_key: str | None = None
    upload_session_id: str | None = None
    fingerprint: str | None = None
    instance_id: str | None = None
    dispatched_ms: int | None = None
    started_ms: int | None = None
    ended_ms: int | None = None
    expire_sent_ms: int | None = None
    error: str | None = None
    reason: str | None = None
    completion_reason: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def dispatched(self) -> bool:
        return self.instance_id is not None


_RECORD_FIELDS = frozenset(field.name for field in fields(TaskRecord))


def _with_changes(record: TaskRecord, changes: dict[str, Any]) -> TaskRecord:
    """``record`` with ``changes``, like ``dataclasses.replace`` without re-running
    ``__init__`` over all its fields (a task changes two or three times)."""
    unknown = changes.keys() - _RECORD_FIELDS
    if unknown:
        raise TypeError(f"TaskRecord has no field(s) {sorted(unknown)}")
    changed = object.__new__(TaskRecord)
    changed.__dict__.update(record.__dict__)
    changed.__dict__.update(changes)
    return changed


@dataclass(frozen=True)
class TaskFilter:
    """ListTasks filters; ``None`` means "any"."""

    owner_id: str | None = None
    agent_name: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class TaskPage:
    tasks: list[TaskRecord]
    next: str | None
    #: Every visible task matching the filters; None when not asked (``count_total=False``).
    total_count: int | None


_COLUMNS = list(TaskRecord.__dataclass_fields__)


def visible_clause(user_id: str, org_id: str) -> tuple[str, list[object]]:
    """The SQL condition (with its parameters) for the tasks ``user_id`` of ``org_id`` may
    see: those they own and those run by an agent of their organisation. ListTasks and the
    dashboard's summaries both use it, so they cannot disagree."""
    return "(owner_id=? OR agent_org_id=?)", [user_id, org_id]


def _to_row(record: TaskRecord) -> list[object]:
    values: list[object] = []
    for name in _COLUMNS:
        value = getattr(record, name)
        if name in _JSON_COLUMNS:
            value = json.dumps(value, separators=(",", ":"))
        elif name in _BOOL_COLUMNS:
            value = 1 if value else 0
        values.append(value)
    return values


def _from_row(row: sqlite3.Row) -> TaskRecord:
    values: dict[str, Any] = {}
    for name in _COLUMNS:
        value = row[name]
        if name in _JSON_COLUMNS:
            value = json.loads(value)
        elif name in _BOOL_COLUMNS:
            value = bool(value)
        values[name] = value
    return TaskRecord(**values)


#: Records kept in memory (write-through): every event on a task channel looks its task up.
_RECORD_CACHE_SIZE = 4096
_ABSENT: Any = object()


class TaskStore:
    """Reads and writes task rows; every method is a few short SQLite statements.

    Recently used records are also kept in memory, updated by every write here (this class
    is the only writer of the table), so the per-event lookups skip SQLite; records with
    changes not yet written stay in memory until they are. Records are shared: treat them
    and their dicts as read-only.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._records: dict[str, TaskRecord] = {}
        # Records not written yet: task id -> None (new: INSERT) or the changed columns.
        self._unwritten: dict[str, set[str] | None] = {}
        db.ensure_schema(_SCHEMA)
        self._insert_sql = (
            f"INSERT INTO tasks ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
        )
        db.add_write_behind("tasks", self._write_unwritten)

    def insert(self, record: TaskRecord) -> TaskRecord | None:
        """Store a new task; returns None (and stores nothing) when its idempotency key is
        taken by another task of the same owner."""
        if record.idempotency_key is None and record.upload_session_id is None:
            # Nothing to check against other rows (task ids are unique by construction),
            # and no transaction to be part of: the INSERT can wait for the commit.
            self._remember(record)
            self._mark(record.task_id, columns=None)
            return record
        try:
            self._db.execute(self._insert_sql, _to_row(record))
        except sqlite3.IntegrityError:
            if record.idempotency_key is not None:
                return None
            raise
        self._remember(record)
        return record

    def get(self, task_id: str) -> TaskRecord | None:
        cached = self._records.get(task_id)
        if cached is not None:
            return cached
        row = self._db.query_one("SELECT * FROM tasks WHERE task_id=?", (task_id,))
        return None if row is None else self._remember(_from_row(row))

    def _remember(self, record: TaskRecord) -> TaskRecord:
        records = self._records
        if len(records) >= _RECORD_CACHE_SIZE and record.task_id not in records:
            oldest = next(iter(records))
            if oldest in self._unwritten:
                self._write_unwritten()  # its only copy is the cached one
            del records[oldest]
        records[record.task_id] = record
        return record

    def _change(self, task_id: str, **changes: Any) -> None:
        """Apply ``changes`` to the (cached) record and write them with the next commit."""
        self._records[task_id] = _with_changes(self._records[task_id], changes)
        self._mark(task_id, columns=changes)

    def _mark(self, task_id: str, *, columns: Iterable[str] | None) -> None:
        """Queue the record's INSERT (``columns=None``) or an UPDATE of ``columns``."""
        unwritten = self._unwritten
        queued = unwritten.get(task_id, _ABSENT)
        if queued is _ABSENT:
            unwritten[task_id] = None if columns is None else set(columns)
            if not self._db.batching or self._db.in_unit:
                # Inside a unit the write must roll back with it (nothing else is queued
                # then: a unit starts by writing every queue).
                self._write_unwritten()
            elif len(unwritten) == 1:
                self._db.open_batch()  # the commit that will write them
        elif queued is not None and columns is not None:
            queued.update(columns)

    def _write_unwritten(self) -> None:
        """The database's write-behind hook: write each queued record as it now is (only
        the changed columns of rows already written, as other writers may set the rest)."""
        if not self._unwritten:
            return
        unwritten, self._unwritten = self._unwritten, {}
        inserts: list[list[object]] = []
        updates: dict[tuple[str, ...], list[list[object]]] = {}
        for task_id, columns in unwritten.items():
            record = self._records[task_id]
            if columns is None:
                inserts.append(_to_row(record))
            else:
                names = tuple(sorted(columns))
                row = [getattr(record, name) for name in names]
                updates.setdefault(names, []).append([*row, task_id])
        if inserts:
            self._db.executemany(self._insert_sql, inserts)
        for names, rows in updates.items():
            assignments = ", ".join(f"{name}=?" for name in names)
            self._db.executemany(f"UPDATE tasks SET {assignments} WHERE task_id=?", rows)

    def find_idempotent(self, owner_id: str, key: str) -> TaskRecord | None:
        row = self._db.query_one(
            "SELECT * FROM tasks WHERE owner_id=? AND idempotency_key=?", (owner_id, key)
        )
        return None if row is None else _from_row(row)

    def active(self) -> list[TaskRecord]:
        """Every task that is not terminal, oldest first."""
        rows = self._db.query(
            "SELECT * FROM tasks WHERE state IN (?,?,?) ORDER BY created_ms, task_id",
            ACTIVE_STATES,
        )
        return [_from_row(r) for r in rows]

    def mark_dispatched(
        self, task_id: str, instance_id: str, now_ms: int, duration_expires_at_ms: int | None
    ) -> bool:
        """queued → submitted on ``instance_id``; False if the task is no longer queued."""
        record = self.get(task_id)
        if record is None or record.state != STATE_QUEUED:
            return False
        self._change(
            task_id,
            state=STATE_SUBMITTED,
            instance_id=instance_id,
            dispatched_ms=now_ms,
            updated_ms=now_ms,
            duration_expires_at_ms=duration_expires_at_ms,
        )
        return True

    def requeue(self, task_id: str, instance_id: str, now_ms: int) -> bool:
        """submitted on ``instance_id`` (never started) → queued; False otherwise."""
        record = self.get(task_id)
        if record is None or record.state != STATE_SUBMITTED or record.instance_id != instance_id:
            return False
        self._change(
            task_id,
            state=STATE_QUEUED,
            instance_id=None,
            dispatched_ms=None,
            duration_expires_at_ms=None,
            expire_sent_ms=None,
            updated_ms=now_ms,
        )
        return True

    def mark_running(self, task_id: str, now_ms: int) -> bool:
        """submitted → running (first report only)."""
        record = self.get(task_id)
        if record is None or record.state not in (STATE_QUEUED, STATE_SUBMITTED):
            return False
        started = now_ms if record.started_ms is None else record.started_ms
        self._change(task_id, state=STATE_RUNNING, started_ms=started, updated_ms=now_ms)
        return True

    def touch(self, task_id: str, now_ms: int) -> None:
        record = self.get(task_id)
        if record is not None and record.state in ACTIVE_STATES:
            self._change(task_id, updated_ms=now_ms)

    def mark_expire_sent(self, task_id: str, now_ms: int) -> None:
        if self.get(task_id) is not None:
            self._change(task_id, expire_sent_ms=now_ms, updated_ms=now_ms)

    def finish(
        self,
        task_id: str,
        state: str,
        now_ms: int,
        *,
        error: str | None = None,
        reason: str | None = None,
        completion_reason: str | None = None,
    ) -> TaskRecord | None:
        """Record a terminal; returns the updated record, or None when the task was already
        terminal (first terminal wins) or does not exist."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"{state!r} is not a terminal state")
        record = self.get(task_id)
        if record is None or record.state not in ACTIVE_STATES:
            return None
        self._change(
            task_id,
            state=state,
            ended_ms=now_ms,
            updated_ms=now_ms,
            error=error,
            reason=reason,
            completion_reason=completion_reason,
        )
        return self._records[task_id]

    def list_visible(
        self,
        user_id: str,
        org_id: str,
        filters: TaskFilter,
        *,
        limit: int,
        cursor: str | None,
        count_total: bool = True,
    ) -> TaskPage:
        """Tasks owned by ``user_id`` or run by an agent of ``org_id``, newest first.

        ``count_total=False`` skips the exact count (~9 ms at 100,000 visible tasks) for a
        caller that shows no total. Raises :class:`InvalidCursor` for a cursor not produced
        by this method.
        """
        filters_sql = ""
        filter_params: list[object] = []
        for column, value in (
            ("owner_id", filters.owner_id),
            ("agent_name", filters.agent_name),
            ("state", filters.state),
        ):
            if value is not None:
                filters_sql += f" AND {column}=?"
                filter_params.append(value)
        total: int | None = None
        if count_total:
            visible, params = visible_clause(user_id, org_id)
            total_row = self._db.query_one(
                f"SELECT COUNT(*) AS n FROM tasks WHERE {visible}{filters_sql}",
                [*params, *filter_params],
            )
            total = int(total_row["n"]) if total_row is not None else 0
        page_sql = filters_sql
        page_params = list(filter_params)
        if cursor is not None:
            created_ms, task_id = decode_cursor(cursor)
            page_sql += " AND (created_ms < ? OR (created_ms = ? AND task_id < ?))"
            page_params += [created_ms, created_ms, task_id]
        # The visible rule (owner OR agent org) as two branches, each walking its own
        # (column, created_ms) index newest first and stopping after a page: an OR would
        # gather every visible row and sort them all (100 ms at 100,000 tasks).
        order = "ORDER BY created_ms DESC, task_id DESC LIMIT ?"
        branches = " UNION ALL ".join(
            f"SELECT task_id FROM (SELECT task_id, created_ms FROM tasks WHERE {column}=?"
            f"{page_sql} {order})"
            for column in ("owner_id", "agent_org_id")
        )
        rows = self._db.query(
            f"SELECT * FROM tasks WHERE task_id IN ({branches}) {order}",
            [
                user_id,
                *page_params,
                limit + 1,
                org_id,
                *page_params,
                limit + 1,
                limit + 1,
            ],
        )
        records = [_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(records[-1].created_ms, records[-1].task_id) if more else None
        return TaskPage(tasks=records, next=next_cursor, total_count=total)

    def sweep_finished(self, created_before_ms: int, limit: int) -> list[str]:
        """Delete at most ``limit`` terminal tasks created before ``created_before_ms``
        (retention); returns their ids. Active tasks stay, however old."""
        self._write_unwritten()
        rows = self._db.query(
            "SELECT task_id FROM tasks WHERE created_ms < ? AND state NOT IN (?,?,?)"
            " ORDER BY created_ms LIMIT ?",
            (created_before_ms, *ACTIVE_STATES, limit),
        )
        ids = [row["task_id"] for row in rows]
        if ids:
            self._db.executemany("DELETE FROM tasks WHERE task_id=?", [(i,) for i in ids])
            for task_id in ids:
                self._records.pop(task_id, None)
        return ids

    def count_queued(self, agent_name: str) -> int:
        row = self._db.query_one(
            "SELECT COUNT(*) AS n FROM tasks WHERE agent_name=? AND state=?",
            (agent_name, STATE_QUEUED),
        )
        return int(row["n"]) if row is not None else 0
