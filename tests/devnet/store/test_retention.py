"""Old rows go in small batches: a backlog drains a batch per loop turn."""

from __future__ import annotations

import asyncio

import pytest

from blocks_devnet.store.retention import Retention, Sweeper


class _Backlog:
    """A sweep over ``rows`` rows that records the size of each batch asked for."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.batches: list[int] = []

    def __call__(self, limit: int) -> int:
        taken = min(limit, self.rows)
        self.rows -= taken
        self.batches.append(taken)
        return taken


def test_a_backlog_drains_in_batches_with_the_loop_free_between_them() -> None:
    sweeper = Sweeper(batch_rows=10)
    backlog = _Backlog(25)
    sweeper.add("rows", backlog)
    turns: list[int] = []

    async def scenario() -> dict[str, int]:
        async def count_turns() -> None:
            while True:
                turns.append(len(backlog.batches))
                await asyncio.sleep(0)

        ticker = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        removed = await sweeper.sweep_all()
        ticker.cancel()
        return removed

    assert asyncio.run(scenario()) == {"rows": 25}
    assert backlog.batches == [10, 10, 5]
    # Another task ran between the batches: the loop was never held for the whole backlog.
    assert 1 in turns and 2 in turns


def test_a_failing_sweep_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(limit: int) -> int:
        raise RuntimeError("disk on fire")

    sweeper = Sweeper(batch_rows=10)
    backlog = _Backlog(3)
    sweeper.add("broken", broken)
    sweeper.add("rows", backlog)
    assert asyncio.run(sweeper.sweep_all()) == {"broken": 0, "rows": 3}
    assert sweeper.sweep_all_now() == {"broken": 0, "rows": 0}
    assert "sweeping broken failed" in caplog.text


def test_retention_in_days_and_zero_keeps_forever() -> None:
    assert Retention.days(0).seconds is None
    assert Retention.days(7).seconds == 7 * 86_400
    with pytest.raises(ValueError, match="keep forever"):
        Retention.days(-1)
