"""Published rows are written behind (with the batch commit): every reader still sees them
at once, a clean stop writes them all, and a restart reloads them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from blocks_devnet.realtime.envelope import build_envelope
from blocks_devnet.realtime.history import TimeSpan, select_messages
from blocks_devnet.realtime.message_log import IDLE_LOG_SECONDS, MessageLog
from blocks_devnet.store.database import Database
from tests.devnet.realtime.log_helpers import append_text
from tests.support.fake_clock import FakeClock

SUB = "sub-c-wb"


def publish(log: MessageLog, channel: str, text: str) -> int:
    return append_text(log, SUB, channel, text)


def committed_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def texts(log: MessageLog, channel: str) -> list[str]:
    return [json.loads(m.envelope)["d"] for m in log.collect(SUB, [channel], 0)[0]]


def test_history_sees_a_message_published_in_the_same_loop_turn(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    db = Database(path)
    log = MessageLog(db)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)  # no commit in this test
        tt = publish(log, "room", "hello")
        assert committed_rows(path) == 0  # queued, not even in the open batch yet
        found = select_messages(db, SUB, "room", TimeSpan(), limit=10)
        assert [(m.timetoken, m.message) for m in found] == [(tt, "hello")]

    asyncio.run(scenario())
    log.close()
    db.close()


def test_a_clean_stop_writes_queued_rows_and_a_restart_reloads_them(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    db = Database(path)
    log = MessageLog(db)

    async def scenario() -> list[int]:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        return [publish(log, "room", f"m{n}") for n in range(3)]

    timetokens = asyncio.run(scenario())
    log.close()
    db.close()
    assert committed_rows(path) == 3

    reopened = Database(path)
    try:
        again = MessageLog(reopened)
        assert texts(again, "room") == ["m0", "m1", "m2"]
        assert again.clock.head() >= timetokens[-1]
    finally:
        reopened.close()


def test_rows_reach_disk_with_the_batch_commit(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    db = Database(path)
    log = MessageLog(db)

    async def scenario() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        db.batch_commits(loop, interval_s=0.01)
        for n in range(5):
            publish(log, f"room{n % 2}", f"m{n}")
        before = committed_rows(path)
        deadline = loop.time() + 5
        while committed_rows(path) < 5 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        return before, committed_rows(path)

    assert asyncio.run(scenario()) == (0, 5)
    log.close()
    db.close()


def test_an_evicted_log_reloads_rows_still_queued(tmp_path: Path) -> None:
    db = Database(tmp_path / "log.sqlite3")
    clock = FakeClock()
    log = MessageLog(db, monotonic=clock)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        publish(log, "room", "queued")
        clock.now += IDLE_LOG_SECONDS + 1
        assert log.evict_idle() == 1
        assert texts(log, "room") == ["queued"]  # the reload query wrote the queue first

    asyncio.run(scenario())
    log.close()
    db.close()


def test_prune_sees_queued_rows(tmp_path: Path) -> None:
    db = Database(tmp_path / "log.sqlite3")
    log = MessageLog(db)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        tt = log.append(
            subscribe_key=SUB,
            channel="room",
            publisher="u",
            message="fleeting",
            message_json='"fleeting"',
            store=False,
        )
        assert log.prune(older_than=tt + 1) == 1

    asyncio.run(scenario())
    log.close()
    db.close()


def test_a_started_channel_needs_no_reload_and_keeps_what_it_has(tmp_path: Path) -> None:
    db = Database(tmp_path / "log.sqlite3")
    log = MessageLog(db)
    log.start_channel(SUB, "u.org.t_new")
    assert texts(log, "u.org.t_new") == []
    publish(log, "u.org.t_new", "first")
    log.start_channel(SUB, "u.org.t_new")  # already in memory: nothing changes
    assert texts(log, "u.org.t_new") == ["first"]
    log.close()
    db.close()


def test_envelopes_match_the_reference_builder(tmp_path: Path) -> None:
    db = Database(tmp_path / "log.sqlite3")
    log = MessageLog(db)
    tt = log.append(
        subscribe_key=SUB,
        channel='we"ird',
        publisher="ü",
        message={"a": 1},
        message_json='{"a":1}',
        meta={"m": 2},
        message_type=4,
        custom_message_type="kind-x",
        seqn=7,
    )
    entry = log.collect(SUB, ['we"ird'], 0)[0][0]
    assert entry.envelope == build_envelope(
        subscribe_key=SUB,
        channel='we"ird',
        timetoken=tt,
        publisher="ü",
        message_json='{"a":1}',
        meta_json='{"m":2}',
        message_type=4,
        custom_message_type="kind-x",
        seqn=7,
    )
    parsed = json.loads(entry.envelope)
    assert (parsed["c"], parsed["i"], parsed["e"], parsed["cmt"]) == ('we"ird', "ü", 4, "kind-x")
    assert parsed["s"] == 7
    log.close()
    db.close()
    # Reloaded from disk (a restart), the envelope is the same, sequence number included.
    db = Database(tmp_path / "log.sqlite3")
    log = MessageLog(db)
    assert log.collect(SUB, ['we"ird'], 0)[0][0].envelope == entry.envelope
    log.close()
    db.close()
