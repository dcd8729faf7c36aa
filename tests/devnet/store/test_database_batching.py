"""Batched commits: one commit per event-loop turn, savepoints inside a batch."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from blocks_devnet.store.database import Database


def other_connection_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        conn.close()


def test_writes_of_one_turn_commit_together_at_the_end_of_the_turn(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = Database(path)
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    async def scenario() -> tuple[int, int, int]:
        db.batch_commits(asyncio.get_running_loop())
        for i in range(5):
            db.execute("INSERT INTO t (x) VALUES (?)", (i,))
        seen_by_writer = int(db.query_one("SELECT COUNT(*) AS n FROM t")["n"])  # type: ignore[index]
        seen_by_other_before = other_connection_count(path)
        await asyncio.sleep(0)  # the turn ends: the batch commits
        await asyncio.sleep(0)
        return seen_by_writer, seen_by_other_before, other_connection_count(path)

    writer, before, after = asyncio.run(scenario())
    db.close()
    assert (writer, before, after) == (5, 0, 5)


def test_failed_unit_inside_a_batch_rolls_back_only_itself(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop())
        db.execute("INSERT INTO t (x) VALUES (1)")
        with pytest.raises(RuntimeError), db.transaction():
            db.execute("INSERT INTO t (x) VALUES (2)")
            raise RuntimeError("half-written")
        with db.transaction():
            db.execute("INSERT INTO t (x) VALUES (3)")
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert [row["x"] for row in db.query("SELECT x FROM t ORDER BY x")] == [1, 3]
    db.close()
    assert other_connection_count(tmp_path / "db.sqlite3") == 2


def test_close_commits_pending_writes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = Database(path)
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop())
        db.execute("INSERT INTO t (x) VALUES (1)")
        db.close()  # before the turn ends

    asyncio.run(scenario())
    assert other_connection_count(path) == 1


def test_with_an_interval_writes_commit_together_once_it_has_passed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = Database(path)
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    async def scenario() -> tuple[int, int, float]:
        loop = asyncio.get_running_loop()
        db.batch_commits(loop, interval_s=0.05)
        started = loop.time()
        db.execute("INSERT INTO t (x) VALUES (1)")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        db.execute("INSERT INTO t (x) VALUES (2)")  # a later turn joins the same batch
        after_turns = other_connection_count(path)
        deadline = started + 5.0
        while other_connection_count(path) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return after_turns, other_connection_count(path), loop.time() - started

    after_turns, committed, elapsed = asyncio.run(scenario())
    db.close()
    assert (after_turns, committed) == (0, 2)
    assert elapsed >= 0.045
