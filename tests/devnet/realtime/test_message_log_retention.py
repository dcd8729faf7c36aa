"""The messages table on disk: old rows leave in bounded batches (retention, TTLs,
unstored rows), a data dir from the WITHOUT ROWID layout is migrated, and the channel logs
kept in memory are bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_devnet.realtime.history import TimeSpan, select_messages
from blocks_devnet.realtime.message_log import MessageLog
from blocks_devnet.store.database import Database
from tests.devnet.realtime.log_helpers import append_text
from tests.support.fake_clock import FakeClock

SUB = "sub-c-ret"


@pytest.fixture
def db() -> Iterator[Database]:
    database = Database(None)
    yield database
    database.close()


def rows(db: Database) -> list[tuple[str, int]]:
    """(channel, stored) of every row, oldest first."""
    return [
        (row["channel"], row["stored"])
        for row in db.query("SELECT channel, stored FROM messages ORDER BY timetoken")
    ]


def test_retention_deletes_the_oldest_rows_a_batch_at_a_time(db: Database) -> None:
    log = MessageLog(db)
    tts = [append_text(log, SUB, f"u.org.t_{n}", f"m{n}") for n in range(5)]
    append_text(log, SUB, "u.org.t_0", "buffer only", store=False)
    assert log.sweep_older_than(tts[3], limit=2) == 2
    assert [channel for channel, _ in rows(db)][:2] == ["u.org.t_2", "u.org.t_3"]
    assert log.sweep_older_than(tts[3], limit=2) == 1
    assert log.sweep_older_than(tts[3], limit=2) == 0
    assert len(rows(db)) == 3


def test_unstored_rows_go_after_a_while_and_stored_ones_stay(db: Database) -> None:
    log = MessageLog(db)
    append_text(log, SUB, "room", "kept", store=True)
    last = append_text(log, SUB, "room", "fleeting", store=False)
    assert log.sweep_unstored(last + 1, limit=100) == 1
    assert rows(db) == [("room", 1)]


def test_a_message_ttl_still_expires_it(db: Database) -> None:
    log = MessageLog(db)
    log.append(
        subscribe_key=SUB,
        channel="room",
        publisher="u",
        message="short",
        message_json='"short"',
        ttl_hours=1,
    )
    append_text(log, SUB, "room", "forever")
    assert log.sweep_expired(limit=100) == 0
    # As if published two hours ago: its hour has passed.
    db.execute("UPDATE messages SET expires_at = expires_at - 2 * 3600 * 10000000")
    assert log.sweep_expired(limit=100) == 1
    assert len(rows(db)) == 1


def test_a_data_dir_from_the_without_rowid_layout_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    old = Database(path)
    old.execute("DROP TABLE messages")
    old.ensure_schema(
        "CREATE TABLE messages (subscribe_key TEXT NOT NULL, channel TEXT NOT NULL,"
        " timetoken INTEGER NOT NULL, publisher TEXT NOT NULL, message TEXT NOT NULL,"
        " meta TEXT, message_type INTEGER NOT NULL, custom_message_type TEXT,"
        " stored INTEGER NOT NULL, expires_at INTEGER,"
        " PRIMARY KEY (subscribe_key, channel, timetoken)) WITHOUT ROWID;"
        "CREATE INDEX messages_by_tt ON messages (stored, timetoken);"
    )
    for tt, text in ((17_000_000_000_000_002, "second"), (17_000_000_000_000_001, "first")):
        old.execute(
            "INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?)",
            (SUB, "room", tt, "u", json.dumps(text), None, 0, None, 1, None),
        )
    old.close()

    db = Database(path)
    log = MessageLog(db)
    table = db.query_one("SELECT sql FROM sqlite_master WHERE name='messages'")
    assert table is not None and "WITHOUT ROWID" not in table["sql"]
    found = select_messages(db, SUB, "room", TimeSpan(None, None), limit=10)
    assert [m.message for m in found] == ["first", "second"]
    # The clock continues after the migrated rows.
    assert append_text(log, SUB, "room", "third") > 17_000_000_000_000_002
    db.close()


def test_channel_logs_in_memory_are_bounded_least_recently_used_first(db: Database) -> None:
    clock = FakeClock()
    log = MessageLog(db, max_logs=3, monotonic=clock)

    async def scenario() -> None:
        waiter = log.wait(SUB, ["held"])  # someone waits on it: it stays
        for name in ("a", "b", "c", "d"):
            clock.now += 1
            append_text(log, SUB, name, name)
        clock.now += 1
        log.collect(SUB, ["a"], 0)  # used again: now the most recent
        assert len(log) == 5
        assert log.evict_idle() == 2
        assert len(log) == 3
        # Evicted ones are b and c; a came back into use, d is recent, held has a waiter.
        assert log.evict_idle() == 0
        log.forget_waiter(SUB, ["held"], waiter)

    asyncio.run(scenario())
    # Evicted logs still come back from SQLite.
    assert [json.loads(m.envelope)["d"] for m in log.collect(SUB, ["b"], 0)[0]] == ["b"]


def test_a_discarded_unstored_row_leaves_the_queue_or_the_disk(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    log = MessageLog(db)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        queued = append_text(log, SUB, "agent.a.control", "start 1", store=False)
        log.discard_unstored_row(queued)  # never written
        written = append_text(log, SUB, "agent.a.control", "start 2", store=False)
        db.commit()
        assert len(rows(db)) == 1
        log.discard_unstored_row(written)  # deleted with the next commit
        db.commit()
        assert rows(db) == []
        # Subscribers still get both from memory.
        assert len(log.collect(SUB, ["agent.a.control"], 0)[0]) == 2

    asyncio.run(scenario())
    log.close()
    db.close()
