"""The overview's tasks-by-state counts: exact when computed, kept a bounded while."""

from __future__ import annotations

import pytest

from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks.store import TaskStore
from blocks_devnet.dashboard import counts as counts_module
from blocks_devnet.dashboard.counts import COST_FACTOR, MIN_AGE_SECONDS, StateCounts
from blocks_devnet.store.database import Database
from tests.devnet.backend.tasks.test_scanner import record

VIEWER = Principal(user_id="user_c", org_id="org_c", kind="consumer")


class Clock:
    """A clock the test moves; each reading can also advance it (a slow count)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _store() -> tuple[Database, TaskStore]:
    db = Database(None)
    store = TaskStore(db)
    store.insert(record(task_id="t_1", state="running"))
    store.insert(record(task_id="t_2", state="completed"))
    # Run by an agent of the viewer's organisation for someone else: visible too.
    store.insert(record(task_id="t_3", state="failed", owner_id="user_x", agent_org_id="org_c"))
    # Someone else's task on another organisation's agent: never counted.
    store.insert(record(task_id="t_4", state="failed", owner_id="user_x", org_id="org_x"))
    return db, store


def test_counts_are_the_viewers_visible_tasks_and_refresh_after_the_minimum_age() -> None:
    db, store = _store()
    clock = Clock()
    counts = StateCounts(db, clock)
    assert counts.get(VIEWER) == {"running": 1, "completed": 1, "failed": 1}
    store.insert(record(task_id="t_5", state="completed"))
    clock.now += MIN_AGE_SECONDS / 2
    assert counts.get(VIEWER)["completed"] == 1  # kept: younger than the minimum age
    clock.now += MIN_AGE_SECONDS
    assert counts.get(VIEWER)["completed"] == 2


def test_a_slow_count_is_kept_cost_factor_times_its_cost() -> None:
    db, store = _store()
    clock = Clock()
    counts = StateCounts(db, clock)
    clock.step = 0.1  # the count "takes" 0.1 s: kept 0.1 * COST_FACTOR s
    counts.get(VIEWER)
    clock.step = 0.0
    store.insert(record(task_id="t_5", state="completed"))
    clock.now += 0.1 * COST_FACTOR - 0.5
    assert counts.get(VIEWER)["completed"] == 1
    clock.now += 1.0
    assert counts.get(VIEWER)["completed"] == 2


def test_each_viewer_has_their_own_counts() -> None:
    db, _ = _store()
    counts = StateCounts(db, Clock())
    counts.get(VIEWER)
    other = Principal(user_id="user_x", org_id="org_x", kind="consumer")
    assert counts.get(other) == {"failed": 2}


def test_at_most_max_viewers_are_kept_the_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(counts_module, "MAX_VIEWERS", 2)
    db, store = _store()
    counts = StateCounts(db, Clock())
    viewers = [Principal(user_id=f"viewer_{n}", org_id="org_c", kind="consumer") for n in "abc"]
    for viewer in viewers:
        counts.get(viewer)
    store.insert(record(task_id="t_5", state="completed", agent_org_id="org_c"))
    # Same clock reading: only a forgotten viewer's counts are computed again.
    assert counts.get(viewers[2]).get("completed") is None
    assert counts.get(viewers[0])["completed"] == 1
