"""MessageLog memory: idle channel logs leave memory and come back from SQLite intact;
unstored rows are written in bulk."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_devnet.realtime import message_log
from blocks_devnet.realtime.message_log import IDLE_LOG_SECONDS, MessageLog
from blocks_devnet.store.database import Database
from tests.devnet.realtime.log_helpers import append_text
from tests.support.fake_clock import FakeClock

SUB = "sub-c-log"


@pytest.fixture
def db() -> Iterator[Database]:
    database = Database(None)
    yield database
    database.close()


def publish(log: MessageLog, channel: str, text: str, *, presence: bool = False) -> int:
    return append_text(log, SUB, channel, text, presence=presence)


def envelopes(log: MessageLog, channel: str) -> list[str]:
    messages, _ = log.collect(SUB, [channel], 0)
    return [m.envelope for m in messages]


def test_idle_logs_are_evicted_and_reload_from_sqlite(db: Database) -> None:
    clock = FakeClock()
    log = MessageLog(db, monotonic=clock)
    for n in range(3):
        publish(log, "task.a", f"m{n}")
    before = envelopes(log, "task.a")
    publish(log, "task.a-pnpres", "join", presence=True)

    clock.now += IDLE_LOG_SECONDS + 1
    assert log.evict_idle() == 2
    assert log.evict_idle() == 0

    assert envelopes(log, "task.a") == before
    # Memory-only entries (presence events) do not come back, as after a restart.
    assert envelopes(log, "task.a-pnpres") == []


def test_an_evicted_log_brings_back_its_unstored_messages(db: Database) -> None:
    # Stream frames are published with store=0; a late reader still replays them.
    clock = FakeClock()
    log = MessageLog(db, monotonic=clock)
    append_text(log, SUB, "stream.a.s1", "frame-1", store=False)
    before = envelopes(log, "stream.a.s1")
    clock.now += IDLE_LOG_SECONDS + 1
    assert log.evict_idle() == 1
    assert envelopes(log, "stream.a.s1") == before


def test_recently_used_logs_stay(db: Database) -> None:
    clock = FakeClock()
    log = MessageLog(db, monotonic=clock)
    publish(log, "written", "x")
    publish(log, "read", "y")
    clock.now += IDLE_LOG_SECONDS - 1
    log.collect(SUB, ["read"], 0)
    publish(log, "written", "z")
    clock.now += 2
    assert log.evict_idle() == 0
    clock.now += IDLE_LOG_SECONDS
    assert log.evict_idle() == 2


def test_a_log_with_a_waiting_subscriber_is_never_evicted(db: Database) -> None:
    clock = FakeClock()
    log = MessageLog(db, monotonic=clock)

    async def scenario() -> None:
        waiter = log.wait(SUB, ["quiet"])
        clock.now += 10 * IDLE_LOG_SECONDS
        assert log.evict_idle() == 0
        publish(log, "quiet", "wake")
        await asyncio.wait_for(waiter, timeout=1)
        log.forget_waiter(SUB, ["quiet"], waiter)

    asyncio.run(scenario())
    clock.now += IDLE_LOG_SECONDS + 1
    assert log.evict_idle() == 1


def publish_unstored(log: MessageLog, channel: str, text: str) -> int:
    return append_text(log, SUB, channel, text, store=False)


def rows_on_disk(db: Database, channel: str) -> list[str]:
    rows = db.query("SELECT message FROM messages WHERE channel=? ORDER BY timetoken", (channel,))
    return [json.loads(row["message"]) for row in rows]


def test_unstored_rows_are_written_in_bulk_keeping_the_newest_buffer(tmp_path: Path) -> None:
    db = Database(tmp_path / "log.sqlite3")
    log = MessageLog(db, buffer_size=3)
    log.defer_unstored_writes(lambda channel: channel == "frames")

    async def scenario() -> None:
        for n in range(5):
            publish_unstored(log, "frames", f"f{n}")
        publish(log, "frames", "stored")  # stored rows are written at once
        # Delivered live at once; on disk only once flushed.
        assert [json.loads(m.envelope)["d"] for m in log.collect(SUB, ["frames"], 0)[0]] == [
            "f0",
            "f1",
            "f2",
            "f3",
            "f4",
            "stored",
        ]
        assert rows_on_disk(db, "frames") == ["stored"]
        # Only the newest buffer_size unstored rows can ever be reloaded: the rest are dropped.
        assert log.flush_unstored() == 3
        assert rows_on_disk(db, "frames") == ["f2", "f3", "f4", "stored"]
        publish_unstored(log, "frames", "f5")

    asyncio.run(scenario())
    log.close()  # a clean shutdown writes what is still queued
    db.close()

    reopened = Database(tmp_path / "log.sqlite3")
    try:
        again = MessageLog(reopened, buffer_size=3)
        assert [json.loads(m.envelope)["d"] for m in again.collect(SUB, ["frames"], 0)[0]] == [
            "f4",
            "stored",
            "f5",
        ]
    finally:
        reopened.close()


def test_unstored_rows_are_flushed_by_the_timer_a_batch_per_turn(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_log, "UNSTORED_FLUSH_SECONDS", 0.01)
    monkeypatch.setattr(message_log, "UNSTORED_ROWS_PER_TURN", 2)
    log = MessageLog(db)
    log.defer_unstored_writes(lambda channel: True)
    seen: list[int] = []

    async def scenario() -> None:
        for n in range(5):
            publish_unstored(log, "frames", f"f{n}")
        assert rows_on_disk(db, "frames") == []
        deadline = asyncio.get_running_loop().time() + 5
        while len(rows_on_disk(db, "frames")) < 5:
            assert asyncio.get_running_loop().time() < deadline, "the flush timer never ran"
            seen.append(len(rows_on_disk(db, "frames")))
            await asyncio.sleep(0)
        assert rows_on_disk(db, "frames") == [f"f{n}" for n in range(5)]

    asyncio.run(scenario())
    # Written over several loop turns, never more than a batch at a time.
    assert {2, 4} <= set(seen)


def test_unstored_rows_are_written_before_an_idle_log_is_evicted(db: Database) -> None:
    clock = FakeClock()
    log = MessageLog(db, monotonic=clock)
    log.defer_unstored_writes(lambda channel: True)

    async def scenario() -> None:
        publish_unstored(log, "frames", "f0")

    asyncio.run(scenario())
    clock.now += IDLE_LOG_SECONDS + 1
    assert log.evict_idle() == 1
    assert [json.loads(m.envelope)["d"] for m in log.collect(SUB, ["frames"], 0)[0]] == ["f0"]


def test_unstored_rows_of_other_channels_are_written_at_once(db: Database) -> None:
    log = MessageLog(db)
    log.defer_unstored_writes(lambda channel: channel.startswith("stream."))

    async def scenario() -> None:
        publish_unstored(log, "room", "r0")
        publish_unstored(log, "stream.a.s1", "f0")
        assert rows_on_disk(db, "room") == ["r0"]
        assert rows_on_disk(db, "stream.a.s1") == []

    asyncio.run(scenario())
    assert MessageLog(db).defers_unstored("stream.a.s1") is False  # off unless asked for
