"""Task records and write tokens are written behind (with the batch commit): a task that
starts and ends within one batch is one INSERT, SQL reads still see every record, and a
clean stop or a restart loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from blocks_devnet.backend.tasks.store import TaskFilter, TaskStore
from blocks_devnet.backend.tasks.tokens import TokenLedger
from blocks_devnet.store.database import Database
from tests.devnet.backend.tasks.test_scanner import record


def spy_statements(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement ``db`` runs from now on (first word and table)."""
    seen: list[str] = []
    execute, executemany = db.execute, db.executemany

    def spy_execute(sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        seen.append(" ".join(sql.split()[:3]))
        return execute(sql, params)

    def spy_executemany(sql: str, rows: Iterable[Iterable[object]]) -> sqlite3.Cursor:
        seen.append(" ".join(sql.split()[:3]))
        return executemany(sql, rows)

    monkeypatch.setattr(db, "execute", spy_execute)
    monkeypatch.setattr(db, "executemany", spy_executemany)
    return seen


def state_on_disk(path: Path, task_id: str) -> tuple[str, int | None] | None:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT state, ended_ms FROM tasks WHERE task_id=?", (task_id,))
        found = row.fetchone()
        return None if found is None else (found[0], found[1])
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    database = Database(path)
    yield database
    database.close()  # a second close does nothing


@pytest.fixture
def store(db: Database) -> TaskStore:
    return TaskStore(db)


def test_a_task_created_started_and_finished_in_one_batch_is_one_insert(
    path: Path, db: Database, store: TaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = spy_statements(db, monkeypatch)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        store.insert(record(state="submitted"))
        assert store.mark_running("t_1", 5) is True
        assert store.finish("t_1", "completed", 9) is not None
        assert state_on_disk(path, "t_1") is None  # nothing written yet

    asyncio.run(scenario())
    db.close()  # a clean stop writes it
    assert statements == ["INSERT INTO tasks"]
    assert state_on_disk(path, "t_1") == ("completed", 9)


def test_changes_to_a_written_record_merge_into_one_update(
    path: Path, db: Database, store: TaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.insert(record(state="submitted"))  # no batching yet: written at once
    statements = spy_statements(db, monkeypatch)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        store.mark_running("t_1", 5)
        store.finish("t_1", "failed", 9, error="boom")
        assert store.finish("t_1", "completed", 10) is None  # the first terminal won

    asyncio.run(scenario())
    db.close()
    assert statements == ["UPDATE tasks SET"]
    assert state_on_disk(path, "t_1") == ("failed", 9)
    again = Database(path)
    reopened = TaskStore(again).get("t_1")
    again.close()
    assert reopened is not None and reopened.error == "boom" and reopened.started_ms == 5


def test_sql_reads_see_records_not_written_yet(db: Database, store: TaskStore) -> None:

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        store.insert(record(task_id="t_q", state="queued", instance_id=None))
        store.insert(record(task_id="t_r", state="submitted"))
        store.mark_running("t_r", 5)
        page = store.list_visible("user_c", "org_none", TaskFilter(), limit=10, cursor=None)
        assert sorted(r.task_id for r in page.tasks) == ["t_q", "t_r"]
        assert store.count_queued("worker") == 1
        assert sorted((r.task_id, r.state) for r in store.active()) == [
            ("t_q", "queued"),
            ("t_r", "running"),
        ]

    asyncio.run(scenario())
    db.close()


def test_idempotency_keys_are_still_checked_at_once_with_batching(
    db: Database, store: TaskStore
) -> None:

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        assert store.insert(record(idempotency_key="k")) is not None
        assert store.insert(record(task_id="t_2", idempotency_key="k")) is None

    asyncio.run(scenario())
    db.close()


def test_unknown_tasks_are_left_alone(db: Database, store: TaskStore) -> None:
    assert store.mark_running("t_none", 1) is False
    assert store.mark_dispatched("t_none", "AG-1", 1, None) is False
    assert store.finish("t_none", "completed", 1) is None
    store.mark_expire_sent("t_none", 1)
    store.touch("t_none", 1)
    assert store.get("t_none") is None
    db.close()


def test_a_terminal_in_the_same_batch_revokes_without_writing_the_token(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    revoked: list[tuple[str, str]] = []
    ledger = TokenLedger(db, lambda key, token: revoked.append((key, token)))
    statements = spy_statements(db, monkeypatch)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        ledger.record_write_token("t_1", "sub-c-1", "tok-1")
        ledger.record_write_token("t_2", "sub-c-1", "tok-2")
        assert ledger.on_terminal("t_1", 100, 0, has_streams=False) == 1

    asyncio.run(scenario())
    db.close()
    assert revoked == [("sub-c-1", "tok-1")]
    assert statements == ["INSERT OR IGNORE"]  # only t_2's row, which is still needed


def test_write_tokens_recorded_before_a_restart_are_revoked_after_it(
    path: Path, db: Database
) -> None:
    first = TokenLedger(db, lambda key, token: None)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        first.record_write_token("t_1", "sub-c-1", "tok-1")

    asyncio.run(scenario())
    db.close()  # a clean stop writes the queued row

    reopened = Database(path)
    revoked: list[tuple[str, str]] = []
    after = TokenLedger(reopened, lambda key, token: revoked.append((key, token)))
    assert after.on_terminal("t_1", 100, 0, has_streams=False) == 1
    assert revoked == [("sub-c-1", "tok-1")]
    reopened.close()


def test_a_rolled_back_unit_keeps_the_records_queued_before_it(
    path: Path, db: Database, store: TaskStore
) -> None:
    # A unit that reads ``tasks`` and fails (e.g. an upload request for an unknown task)
    # must not take the other tasks' queued rows with it.
    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        store.insert(record(task_id="t_queued", state="submitted"))
        with pytest.raises(RuntimeError), db.transaction():
            assert store.get("t_unknown") is None  # a cache miss: reads the table
            store.insert(record(task_id="t_in_unit", state="submitted"))
            raise RuntimeError("task not found")
        assert store.get("t_queued") is not None

    asyncio.run(scenario())
    db.close()
    assert state_on_disk(path, "t_queued") == ("submitted", None)
    assert state_on_disk(path, "t_in_unit") is None  # rolled back with its unit
