"""MessageLog memory: idle channel logs leave memory and come back from SQLite intact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from blocks_devnet.realtime.message_log import IDLE_LOG_SECONDS, MessageLog
from blocks_devnet.store.database import Database

SUB = "sub-c-log"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db() -> Iterator[Database]:
    database = Database(None)
    yield database
    database.close()


def publish(log: MessageLog, channel: str, text: str, *, persist: bool = True) -> int:
    return log.append(
        subscribe_key=SUB,
        channel=channel,
        publisher="u",
        message=text,
        message_json=json.dumps(text),
        persist=persist,
    )


def envelopes(log: MessageLog, channel: str) -> list[str]:
    messages, _ = log.collect(SUB, [channel], 0)
    return [m.envelope for m in messages]


def test_idle_logs_are_evicted_and_reload_from_sqlite(db: Database) -> None:
    clock = FakeClock()
    log = MessageLog(db, monotonic=clock)
    for n in range(3):
        publish(log, "task.a", f"m{n}")
    before = envelopes(log, "task.a")
    publish(log, "task.a-pnpres", "join", persist=False)

    clock.now += IDLE_LOG_SECONDS + 1
    assert log.evict_idle() == 2
    assert log.evict_idle() == 0

    assert envelopes(log, "task.a") == before
    # Memory-only entries (presence events) do not come back, as after a restart.
    assert envelopes(log, "task.a-pnpres") == []


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
