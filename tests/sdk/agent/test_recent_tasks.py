"""The memory of accepted task ids that makes a redelivered StartTask a no-op: bounded."""

from __future__ import annotations

from blocks_network.agent.recent_tasks import RecentTasks
from tests.support.fake_clock import FakeClock


def test_remembers_up_to_the_limit_oldest_forgotten_first() -> None:
    recent = RecentTasks(limit=3, max_age_s=3600)
    for n in range(5):
        recent.add(f"t_{n}")
    assert len(recent) == 3
    assert "t_1" not in recent and "t_2" in recent and "t_4" in recent


def test_forgets_after_the_age_limit() -> None:
    clock = FakeClock()
    recent = RecentTasks(limit=100, max_age_s=60, clock=clock)
    recent.add("t_old")
    clock.now += 30
    recent.add("t_new")
    clock.now += 31
    assert "t_old" not in recent and "t_new" in recent
    assert len(recent) == 1
