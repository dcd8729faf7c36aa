"""Write-behind queues: written before every commit and before any statement naming their
table, never lost by a clean close, and a failing queue does not stop the batch."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_devnet.store.database import Database, RowQueue

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS queued (x INTEGER); CREATE TABLE IF NOT EXISTS other (y INTEGER);"
)


class Queue(RowQueue):
    """The write-behind queue for ``queued``, counting its statements."""

    def __init__(self, db: Database) -> None:
        self.flushes = 0
        super().__init__(db, "queued", "INSERT INTO queued (x) VALUES (?)")

    def flush(self) -> None:
        if len(self):
            self.flushes += 1
        super().flush()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    database = Database(path)
    database.ensure_schema(SCHEMA)
    yield database
    database.close()


@pytest.fixture
def queue(db: Database) -> Queue:
    return Queue(db)


def committed(path: Path, table: str = "queued") -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_queued_rows_are_written_with_the_batch_commit_in_one_statement(
    path: Path, db: Database, queue: Queue
) -> None:

    async def scenario() -> tuple[int, int]:
        db.batch_commits(asyncio.get_running_loop(), interval_s=0.01)
        for x in range(3):
            queue.add((x,))  # the first row opens the batch, so a commit is due
        before = committed(path)
        deadline = asyncio.get_running_loop().time() + 5
        while committed(path) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        return before, committed(path)

    before, after = asyncio.run(scenario())
    db.close()
    assert (before, after, queue.flushes) == (0, 3, 1)


def test_a_statement_naming_the_table_sees_queued_rows_and_others_leave_them(
    db: Database, queue: Queue
) -> None:

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop())
        queue.add((1,))
        db.execute("INSERT INTO other (y) VALUES (1)")
        assert db.query_one("SELECT COUNT(*) AS n FROM other")["n"] == 1  # type: ignore[index]
        assert len(queue) == 1  # statements on other tables do not write the queue
        assert db.query_one("SELECT COUNT(*) AS n FROM queued")["n"] == 1  # type: ignore[index]
        assert len(queue) == 0
        queue.add((2,))
        db.execute("DELETE FROM queued WHERE x=2")  # a write naming it goes after the queue
        assert [r["x"] for r in db.query("SELECT x FROM queued")] == [1]

    asyncio.run(scenario())
    db.close()


def test_close_writes_queued_rows(path: Path, db: Database, queue: Queue) -> None:

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop())
        queue.add((7,))
        db.close()  # before the turn ends

    asyncio.run(scenario())
    assert committed(path) == 1


def test_a_failing_queue_is_logged_and_the_batch_still_commits(
    path: Path, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    pending = [(1,)]

    def broken() -> None:
        rows = pending[:]
        pending.clear()
        if rows:
            db.executemany("INSERT INTO missing_table (z) VALUES (?)", rows)

    db.add_write_behind("missing_table", broken)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop())
        db.execute("INSERT INTO other (y) VALUES (1)")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="blocks_devnet.store.database"):
        asyncio.run(scenario())
    assert committed(path, "other") == 1
    assert "writing queued rows failed" in caplog.text
    db.close()


def test_rows_queued_inside_a_unit_are_committed_with_the_batch(
    path: Path, db: Database, queue: Queue
) -> None:

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        db.batch_commits(loop, interval_s=0.01)
        with db.transaction():  # no batch open yet: the unit opens one
            db.execute("INSERT INTO other (y) VALUES (1)")
            queue.add((1,))
        deadline = loop.time() + 5
        while committed(path) < 1 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return committed(path)

    assert asyncio.run(scenario()) == 1
    assert len(queue) == 0
    db.close()


def test_a_rolled_back_unit_keeps_rows_queued_before_it(
    path: Path, db: Database, queue: Queue
) -> None:
    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        queue.add((1,))
        with pytest.raises(RuntimeError), db.transaction():
            db.query("SELECT x FROM queued")  # names the table inside the unit
            queue.add((2,))  # inside a unit: written at once, rolled back with it
            raise RuntimeError("the unit fails")
        db.close()

    asyncio.run(scenario())
    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("SELECT x FROM queued")] == [1]
    finally:
        conn.close()


def test_a_flush_raising_anything_is_logged_and_later_batches_still_commit(
    path: Path, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug in a component's flush")

    db.add_write_behind("nothing_here", broken)

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        db.batch_commits(loop, interval_s=0.01)
        db.execute("INSERT INTO other (y) VALUES (1)")
        deadline = loop.time() + 5
        while committed(path, "other") < 1 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        db.execute("INSERT INTO other (y) VALUES (2)")
        while committed(path, "other") < 2 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return committed(path, "other")

    with caplog.at_level(logging.ERROR, logger="blocks_devnet.store.database"):
        assert asyncio.run(scenario()) == 2
    assert "writing queued rows failed" in caplog.text
