"""Presigned uploads of the Blocks backend (protocol.md §5.6): sessions and upload rows.

A consumer's first ``consumer-input`` upload opens an *upload session* for one agent. The
session reserves the id of the task it will become, so each input file is uploaded straight
onto that task's channel (``u.{orgId}.{taskId}``): the instance's write token and the
consumer's read token grant it with no copying, and SendMessage only rebuilds each part's
file ArtifactRef from the rows here. A session is used by at most one task.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from blocks_devnet.backend.tasks.store import new_task_id
from blocks_devnet.store.database import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS upload_sessions (
    session_id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    environment TEXT NOT NULL,
    task_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS upload_records (
    upload_id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    session_id TEXT,
    task_id TEXT NOT NULL,
    part_id TEXT,
    output_id TEXT,
    environment TEXT NOT NULL,
    channel TEXT NOT NULL,
    file_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    declared_size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    confirmed_ms INTEGER,
    artifact_ref TEXT
);
CREATE INDEX IF NOT EXISTS upload_records_by_session ON upload_records (session_id, created_ms);
"""


@dataclass(frozen=True)
class UploadSession:
    session_id: str
    owner_id: str
    org_id: str
    agent_name: str
    environment: str
    #: The id the task created from this session will have.
    task_id: str
    created_ms: int
    used: bool = False


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    role: str
    owner_id: str
    task_id: str
    environment: str
    channel: str
    file_id: str
    file_name: str
    mime_type: str
    declared_size: int
    created_ms: int
    session_id: str | None = None
    part_id: str | None = None
    output_id: str | None = None
    confirmed_ms: int | None = None
    artifact_ref: dict[str, Any] | None = None


def _session(row: sqlite3.Row) -> UploadSession:
    return UploadSession(
        session_id=row["session_id"],
        owner_id=row["owner_id"],
        org_id=row["org_id"],
        agent_name=row["agent_name"],
        environment=row["environment"],
        task_id=row["task_id"],
        created_ms=row["created_ms"],
        used=bool(row["used"]),
    )


def _record(row: sqlite3.Row) -> UploadRecord:
    ref = row["artifact_ref"]
    return UploadRecord(
        upload_id=row["upload_id"],
        role=row["role"],
        owner_id=row["owner_id"],
        task_id=row["task_id"],
        environment=row["environment"],
        channel=row["channel"],
        file_id=row["file_id"],
        file_name=row["file_name"],
        mime_type=row["mime_type"],
        declared_size=row["declared_size"],
        created_ms=row["created_ms"],
        session_id=row["session_id"],
        part_id=row["part_id"],
        output_id=row["output_id"],
        confirmed_ms=row["confirmed_ms"],
        artifact_ref=None if ref is None else json.loads(ref),
    )


class UploadLedger:
    """Upload sessions and upload rows in the shared database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.ensure_schema(_SCHEMA)

    def create_session(
        self, owner_id: str, org_id: str, agent_name: str, environment: str, now_ms: int
    ) -> UploadSession:
        session = UploadSession(
            session_id=f"us_{uuid.uuid4().hex}",
            owner_id=owner_id,
            org_id=org_id,
            agent_name=agent_name,
            environment=environment,
            task_id=new_task_id(),
            created_ms=now_ms,
        )
        self._db.execute(
            "INSERT INTO upload_sessions (session_id, owner_id, org_id, agent_name, environment,"
            " task_id, created_ms) VALUES (?,?,?,?,?,?,?)",
            (
                session.session_id,
                owner_id,
                org_id,
                agent_name,
                environment,
                session.task_id,
                now_ms,
            ),
        )
        return session

    def session(self, session_id: str) -> UploadSession | None:
        row = self._db.query_one("SELECT * FROM upload_sessions WHERE session_id=?", (session_id,))
        return None if row is None else _session(row)

    def claim_session(self, session_id: str) -> bool:
        """Mark the session used by its task; False if another task used it already."""
        cursor = self._db.execute(
            "UPDATE upload_sessions SET used=1 WHERE session_id=? AND used=0", (session_id,)
        )
        return cursor.rowcount > 0

    def add(self, record: UploadRecord) -> None:
        self._db.execute(
            "INSERT INTO upload_records (upload_id, role, owner_id, session_id, task_id, part_id,"
            " output_id, environment, channel, file_id, file_name, mime_type, declared_size,"
            " created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.upload_id,
                record.role,
                record.owner_id,
                record.session_id,
                record.task_id,
                record.part_id,
                record.output_id,
                record.environment,
                record.channel,
                record.file_id,
                record.file_name,
                record.mime_type,
                record.declared_size,
                record.created_ms,
            ),
        )

    def get(self, upload_id: str) -> UploadRecord | None:
        row = self._db.query_one("SELECT * FROM upload_records WHERE upload_id=?", (upload_id,))
        return None if row is None else _record(row)

    def confirm(self, upload_id: str, now_ms: int, artifact_ref: dict[str, Any]) -> bool:
        """Record the confirmation; False if it was confirmed before (first one wins)."""
        cursor = self._db.execute(
            "UPDATE upload_records SET confirmed_ms=?, artifact_ref=?"
            " WHERE upload_id=? AND confirmed_ms IS NULL",
            (now_ms, json.dumps(artifact_ref, separators=(",", ":")), upload_id),
        )
        return cursor.rowcount > 0

    def session_uploads(self, session_id: str) -> list[UploadRecord]:
        rows = self._db.query(
            "SELECT * FROM upload_records WHERE session_id=? ORDER BY created_ms, rowid",
            (session_id,),
        )
        return [_record(r) for r in rows]
