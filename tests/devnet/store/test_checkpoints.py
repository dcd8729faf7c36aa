"""WAL checkpoints run on a thread of their own, not inside commits on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from blocks_devnet.store.database import Database

WAIT_S = 10.0


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "blocks-devnet-checkpoint"]


def test_the_wal_reaches_the_database_file_from_the_checkpoint_thread(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = Database(path)
    try:
        db.ensure_schema("CREATE TABLE IF NOT EXISTS items (x TEXT);")
        others = set(_checkpointers())  # other servers' (e.g. a shared test network's)
        db.checkpoint_in_background(interval_s=0.05)
        mine = set(_checkpointers()) - others
        assert len(mine) == 1
        size_before = path.stat().st_size
        modes: list[int] = []

        async def scenario() -> None:
            db.batch_commits(asyncio.get_running_loop(), interval_s=0.01)
            db.executemany("INSERT INTO items (x) VALUES (?)", [("x" * 100,)] * 2000)
            await asyncio.sleep(0.05)  # the batch commits (into the WAL)
            # The loop's connection never checkpoints by itself any more.
            modes.append(int(db.query("PRAGMA wal_autocheckpoint")[0][0]))

        asyncio.run(scenario())
        assert modes == [0]
        # Only a checkpoint writes pages into the database file itself.
        deadline = time.monotonic() + WAIT_S
        while path.stat().st_size <= size_before + 100_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size > size_before + 100_000
    finally:
        db.close()
    assert not any(thread.is_alive() for thread in mine)


def test_an_in_memory_database_starts_no_checkpoint_thread() -> None:
    before = len(_checkpointers())
    db = Database(None)
    db.checkpoint_in_background(interval_s=0.05)
    assert len(_checkpointers()) == before
    db.close()


def test_a_wal_past_its_limit_starts_over_with_batched_commits(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = Database(path)
    largest: list[int] = []

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=0.01)
        db.checkpoint_in_background(interval_s=0.02, wal_limit_bytes=256 * 1024)
        wal = path.with_name(path.name + "-wal")
        for _ in range(400):  # 40 MB, a batch of writes per loop turn
            db.executemany("INSERT INTO items (x) VALUES (?)", [("x" * 1000,)] * 100)
            largest.append(wal.stat().st_size if wal.exists() else 0)
            await asyncio.sleep(0.002)  # commits, and the loop's part of the restart, run

    try:
        db.ensure_schema("CREATE TABLE IF NOT EXISTS items (x TEXT);")
        asyncio.run(scenario())
        assert max(largest) < 8 * 1024 * 1024
    finally:
        db.close()
