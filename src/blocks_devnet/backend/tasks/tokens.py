"""Which access tokens each task handed out, and revoking them when the task ends.

At a terminal (protocol.md §6):
- the instance's write token (T2) is revoked at once: nobody may publish on a finished
  task's channel (the backend publishes as itself and needs no token);
- stream writer tokens (T7a) are revoked at once, except that a *shared* stream's writer
  token lives until the last task using that stream ends;
- consumer stream tokens (T7c) are revoked after ``stream_revoke_delay_ms`` (default: the
  consumer's 30 s drain window), so a reader can finish what was sent before the terminal;
- read tokens (T4) are never revoked: the consumer reads history and downloads result
  files after the terminal. They expire with their TTL and only grant reading.

Streams announced by the setup hook are recorded here too (``streamtoken:{taskId}:{streamId}``
in the hosted network's terms). Revocations are persisted, so a restart keeps them. Write
tokens are kept in memory until the terminal and reach SQLite with the next commit (only
needed after a restart); a task that ends before that commit never writes its row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from blocks_devnet.backend.tasks.store import ACTIVE_STATES
from blocks_devnet.store.database import Database, RowQueue

logger = logging.getLogger(__name__)

KIND_WRITE = "write"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS task_tokens (
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subscribe_key TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (task_id, token)
);
CREATE TABLE IF NOT EXISTS task_streams (
    task_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    subscribe_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    direction TEXT NOT NULL,
    format TEXT NOT NULL,
    affinity TEXT NOT NULL,
    declared_stream TEXT,
    metadata TEXT,
    writer_token TEXT,
    reader_token TEXT,
    ttl_minutes INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    ended INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, stream_id)
);
CREATE INDEX IF NOT EXISTS task_streams_by_channel ON task_streams (subscribe_key, channel);
CREATE TABLE IF NOT EXISTS pending_revocations (
    subscribe_key TEXT NOT NULL,
    token TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    PRIMARY KEY (subscribe_key, token)
);
"""

Revoke = Callable[[str, str], None]

_INSERT_TOKEN_SQL = (
    "INSERT OR IGNORE INTO task_tokens (task_id, kind, subscribe_key, token) VALUES (?,?,?,?)"
)


@dataclass(frozen=True)
class StreamRecord:
    """One stream of one task, as the setup hook recorded it."""

    task_id: str
    stream_id: str
    subscribe_key: str
    channel: str
    direction: str
    format: str
    affinity: str
    ttl_minutes: int
    declared_stream: str | None = None
    metadata: dict[str, Any] | None = None
    writer_token: str | None = None
    reader_token: str | None = None


class TokenLedger:
    """Remembers tokens per task and revokes them through ``revoke(subscribe_key, token)``."""

    def __init__(self, db: Database, revoke: Revoke) -> None:
        self._db = db
        self._revoke = revoke
        db.ensure_schema(_SCHEMA)
        # Write tokens of the tasks recorded since start-up that have not ended: their
        # terminal needs no query. Tasks from before a restart are looked up in SQLite.
        self._live: dict[str, list[tuple[str, str]]] = {}
        # task_tokens rows waiting for the next commit (write-behind): a task that ends
        # before it never has its row written at all.
        self._queued = RowQueue(db, "task_tokens", _INSERT_TOKEN_SQL)

    def record_write_token(self, task_id: str, subscribe_key: str, token: str) -> None:
        """Remember the instance's write token so the task's terminal revokes it."""
        self._live.setdefault(task_id, []).append((subscribe_key, token))
        self._queued.add((task_id, KIND_WRITE, subscribe_key, token))

    def _write_tokens(self, task_id: str) -> list[tuple[str, str]]:
        """``(subscribe_key, token)`` of the task's write tokens, forgetting them."""
        live = self._live.pop(task_id, None)
        if live is None:
            return [
                (row["subscribe_key"], row["token"])
                for row in self._db.query(
                    "SELECT subscribe_key, token FROM task_tokens WHERE task_id=?", (task_id,)
                )
            ]
        # Revoked now, so the row would never be read: it need not be written.
        self._queued.drop(lambda row: row[0] == task_id)
        return live

    def revoke_write_tokens(self, task_id: str) -> int:
        """Revoke the task's write tokens now (its terminal, or taking it back from an
        instance); returns how many."""
        tokens = self._write_tokens(task_id)
        for subscribe_key, token in tokens:
            self._revoke(subscribe_key, token)
        return len(tokens)

    def sweep_ended(self, limit: int) -> int:
        """Delete at most ``limit`` write-token rows of tasks that ended (their tokens were
        revoked at the terminal, so nothing reads the rows again); returns how many."""
        cursor = self._db.execute(
            "DELETE FROM task_tokens WHERE rowid IN (SELECT task_tokens.rowid FROM task_tokens"
            " LEFT JOIN tasks USING (task_id)"
            " WHERE tasks.state IS NULL OR tasks.state NOT IN (?,?,?) LIMIT ?)",
            (*ACTIVE_STATES, limit),
        )
        return cursor.rowcount

    def forget_tasks(self, task_ids: list[str]) -> None:
        """Delete the rows kept for tasks whose records retention removed."""
        rows = [(task_id,) for task_id in task_ids]
        self._db.executemany("DELETE FROM task_tokens WHERE task_id=?", rows)
        self._db.executemany("DELETE FROM task_streams WHERE task_id=?", rows)

    def record_stream(self, stream: StreamRecord, now_ms: int) -> None:
        """Add or replace a task's stream (a later phase may add the writer token)."""
        self._db.execute(
            "INSERT INTO task_streams (task_id, stream_id, subscribe_key, channel, direction,"
            " format, affinity, declared_stream, metadata, writer_token, reader_token,"
            " ttl_minutes, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (task_id, stream_id) DO UPDATE SET"
            " writer_token=COALESCE(excluded.writer_token, writer_token),"
            " reader_token=COALESCE(excluded.reader_token, reader_token)",
            (
                stream.task_id,
                stream.stream_id,
                stream.subscribe_key,
                stream.channel,
                stream.direction,
                stream.format,
                stream.affinity,
                stream.declared_stream,
                None if stream.metadata is None else json.dumps(stream.metadata),
                stream.writer_token,
                stream.reader_token,
                stream.ttl_minutes,
                now_ms,
            ),
        )

    def stream(self, task_id: str, stream_id: str) -> StreamRecord | None:
        row = self._db.query_one(
            "SELECT * FROM task_streams WHERE task_id=? AND stream_id=?", (task_id, stream_id)
        )
        if row is None:
            return None
        return StreamRecord(
            task_id=row["task_id"],
            stream_id=row["stream_id"],
            subscribe_key=row["subscribe_key"],
            channel=row["channel"],
            direction=row["direction"],
            format=row["format"],
            affinity=row["affinity"],
            ttl_minutes=row["ttl_minutes"],
            declared_stream=row["declared_stream"],
            metadata=None if row["metadata"] is None else json.loads(row["metadata"]),
            writer_token=row["writer_token"],
            reader_token=row["reader_token"],
        )

    def stream_writer_token(self, subscribe_key: str, channel: str) -> str | None:
        """A live writer token already minted for a shared stream's channel, if any."""
        row = self._db.query_one(
            "SELECT writer_token FROM task_streams WHERE subscribe_key=? AND channel=?"
            " AND ended=0 AND writer_token IS NOT NULL ORDER BY created_ms LIMIT 1",
            (subscribe_key, channel),
        )
        return None if row is None else str(row["writer_token"])

    def on_terminal(
        self, task_id: str, now_ms: int, stream_revoke_delay_ms: int, *, has_streams: bool = True
    ) -> int:
        """Revoke (or schedule) every token of a finished task; returns how many were
        revoked now. ``has_streams=False`` (streaming was not negotiated, so the setup hook
        never recorded a stream) skips the stream bookkeeping."""
        revoked = self.revoke_write_tokens(task_id)
        if not has_streams:
            return revoked
        streams = self._db.query(
            "SELECT * FROM task_streams WHERE task_id=? AND ended=0", (task_id,)
        )
        self._db.execute("UPDATE task_streams SET ended=1 WHERE task_id=?", (task_id,))
        for row in streams:
            key, channel = row["subscribe_key"], row["channel"]
            if row["reader_token"] is not None:
                revoked += self._revoke_later(
                    key, row["reader_token"], now_ms + stream_revoke_delay_ms, now_ms
                )
            if row["affinity"] == "shared":
                # A shared stream's writer serves every task on it: revoke when the last ends.
                still_used = self._db.query_one(
                    "SELECT 1 FROM task_streams WHERE subscribe_key=? AND channel=? AND ended=0",
                    (key, channel),
                )
                if still_used is not None:
                    continue
                for writer in self._db.query(
                    "SELECT DISTINCT writer_token FROM task_streams WHERE subscribe_key=?"
                    " AND channel=? AND writer_token IS NOT NULL",
                    (key, channel),
                ):
                    self._revoke(key, writer["writer_token"])
                    revoked += 1
            elif row["writer_token"] is not None:
                self._revoke(key, row["writer_token"])
                revoked += 1
        return revoked

    def _revoke_later(self, subscribe_key: str, token: str, due_ms: int, now_ms: int) -> int:
        if due_ms <= now_ms:
            self._revoke(subscribe_key, token)
            return 1
        self._db.execute(
            "INSERT OR IGNORE INTO pending_revocations (subscribe_key, token, due_ms) VALUES (?,?,?)",
            (subscribe_key, token, due_ms),
        )
        return 0

    def revoke_due(self, now_ms: int) -> int:
        """Carry out scheduled revocations that are due; returns how many."""
        rows = self._db.query(
            "SELECT subscribe_key, token FROM pending_revocations WHERE due_ms <= ?", (now_ms,)
        )
        for row in rows:
            self._revoke(row["subscribe_key"], row["token"])
        if rows:
            self._db.execute("DELETE FROM pending_revocations WHERE due_ms <= ?", (now_ms,))
        return len(rows)
