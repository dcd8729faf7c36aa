"""Group commit: ``durable()`` resolves only after the COMMIT covering the writes made so
far; a burst of writers shares one commit; a lone write waits for no timer."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from blocks_devnet.store.database import Database


def committed_count(path: Path) -> int:
    """Rows another connection sees: only committed ones."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "db.sqlite3")
    database.ensure_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER);")
    return database


def test_durable_resolves_only_after_the_commit_that_covers_the_write(db: Database) -> None:
    assert db.path is not None
    path = db.path

    async def scenario() -> tuple[bool, int, int]:
        db.batch_commits(asyncio.get_running_loop())
        db.execute("INSERT INTO t (x) VALUES (1)")
        durable = db.durable()
        done_before = durable.done()
        seen_before = committed_count(path)
        await durable
        return done_before, seen_before, committed_count(path)

    done_before, seen_before, seen_after = asyncio.run(scenario())
    db.close()
    assert (done_before, seen_before, seen_after) == (False, 0, 1)


def test_a_burst_of_concurrent_writers_shares_one_commit(db: Database) -> None:
    async def writer(i: int) -> None:
        await asyncio.sleep(0)  # all start in the same loop turn
        db.execute("INSERT INTO t (x) VALUES (?)", (i,))
        await db.durable()

    async def scenario() -> int:
        db.batch_commits(asyncio.get_running_loop())
        before = db.commits
        await asyncio.gather(*(writer(i) for i in range(50)))
        return db.commits - before

    assert asyncio.run(scenario()) == 1
    db.close()


def test_a_lone_write_waits_for_one_loop_turn_not_a_timer(db: Database) -> None:
    async def scenario() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        db.batch_commits(loop)
        db.execute("INSERT INTO t (x) VALUES (1)")
        durable = db.durable()
        turns = 0
        while not durable.done():
            turns += 1
            await asyncio.sleep(0)  # one loop turn, no time passes on purpose
        return turns, db.commits

    turns, commits = asyncio.run(scenario())
    db.close()
    # The commit runs at the end of the write's turn; the future's callback one turn later.
    assert turns <= 2 and commits == 1


def test_nothing_uncommitted_means_durable_at_once(db: Database) -> None:
    async def scenario() -> tuple[bool, bool]:
        db.batch_commits(asyncio.get_running_loop())
        called: list[BaseException | None] = []
        return db.durable().done(), db.after_commit(called.append)

    assert asyncio.run(scenario()) == (True, False)
    db.close()


def test_after_commit_callbacks_run_right_after_the_commit_in_order(db: Database) -> None:
    assert db.path is not None
    path = db.path
    seen: list[tuple[str, int]] = []

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop())
        db.execute("INSERT INTO t (x) VALUES (1)")
        assert db.after_commit(lambda error: seen.append(("first", committed_count(path))))
        db.execute("INSERT INTO t (x) VALUES (2)")
        assert db.after_commit(lambda error: seen.append(("second", committed_count(path))))
        await db.durable()

    asyncio.run(scenario())
    db.close()
    assert seen == [("first", 2), ("second", 2)]


def test_writes_made_after_a_commit_wait_for_the_next_one(db: Database) -> None:
    assert db.path is not None
    path = db.path

    async def scenario() -> tuple[int, int]:
        db.batch_commits(asyncio.get_running_loop())
        db.execute("INSERT INTO t (x) VALUES (1)")
        await db.durable()
        db.execute("INSERT INTO t (x) VALUES (2)")
        second = db.durable()
        seen_before = committed_count(path)
        await second
        return seen_before, committed_count(path)

    assert asyncio.run(scenario()) == (1, 2)
    db.close()


def test_a_close_before_the_commit_still_commits_and_resolves(db: Database) -> None:
    assert db.path is not None
    path = db.path

    async def scenario() -> bool:
        db.batch_commits(asyncio.get_running_loop())
        db.execute("INSERT INTO t (x) VALUES (1)")
        durable = db.durable()
        db.close()
        await durable
        return True

    assert asyncio.run(scenario())
    assert committed_count(path) == 1
