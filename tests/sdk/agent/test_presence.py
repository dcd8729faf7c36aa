"""Presence reporting: a task's end is announced before its terminal, updates are shared."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blocks_network.agent import presence
from blocks_network.agent.presence import DEBOUNCE_S, PresenceReporter, PresenceTarget
from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.retry import RetryPolicy

KEYSET = Keyset("pub", "sub")


class SlowRealtime:
    """Records each state sent; each send takes ``delay`` seconds."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.sent: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def set_state(
        self, keyset: Keyset, channel: str, state: dict[str, Any], *, token: str | None
    ) -> bool:
        time.sleep(self.delay)  # a request on the wire
        with self.lock:
            self.sent.append(state)
        return True


def _reporter(realtime: SlowRealtime, counter: list[int]) -> PresenceReporter:
    def target() -> PresenceTarget:
        return PresenceTarget(KEYSET, "agent.a.control", "tok", {"activeTasks": counter[0]})

    return PresenceReporter(realtime, target)  # type: ignore[arg-type]


def test_update_returns_after_a_state_with_the_change_was_sent() -> None:
    realtime = SlowRealtime(delay=0.0)
    counter = [3]
    reporter = _reporter(realtime, counter)
    counter[0] = 2
    assert reporter.update()
    assert realtime.sent == [{"activeTasks": 2}]


def test_concurrent_updates_share_requests() -> None:
    realtime = SlowRealtime(delay=0.05)
    counter = [20]
    reporter = _reporter(realtime, counter)
    lock = threading.Lock()
    stale: list[tuple[int, int]] = []

    def task_end() -> None:
        with lock:
            counter[0] -= 1
            mine = counter[0]
        reporter.update()
        # When update() returns, a state including this task's end has been sent.
        with realtime.lock:
            announced = min(state["activeTasks"] for state in realtime.sent)
        if announced > mine:
            stale.append((announced, mine))

    threads = [threading.Thread(target=task_end) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert counter[0] == 0 and not stale
    assert len(realtime.sent) <= 4  # 20 ends, a handful of requests
    assert realtime.sent[-1] == {"activeTasks": 0}


def test_background_changes_are_debounced_and_skipped_when_covered() -> None:
    realtime = SlowRealtime(delay=0.0)
    counter = [0]
    reporter = _reporter(realtime, counter)
    try:
        counter[0] = 1
        reporter.mark_dirty()  # task start: not urgent
        counter[0] = 0
        reporter.update()  # the same task ended quickly: one request covers both
        time.sleep(DEBOUNCE_S * 3)
        assert realtime.sent == [{"activeTasks": 0}]
        counter[0] = 5
        reporter.mark_dirty()
        deadline = time.monotonic() + 5
        while len(realtime.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert realtime.sent[-1] == {"activeTasks": 5}
    finally:
        reporter.close()
        reporter.close()


class FlakyRealtime(SlowRealtime):
    """Fails the sends whose index is in ``failing``."""

    def __init__(self, failing: set[int]) -> None:
        super().__init__(delay=0.0)
        self.failing = failing
        self.calls = 0

    def set_state(
        self, keyset: Keyset, channel: str, state: dict[str, Any], *, token: str | None
    ) -> bool:
        self.calls += 1
        if self.calls - 1 in self.failing:
            return False
        return super().set_state(keyset, channel, state, token=token)


Make = Callable[..., PresenceReporter]


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """``quiet(realtime, counter=[0])`` → a reporter whose background sender does not fire
    during the test (so every send seen was a blocking one); closed afterwards."""
    monkeypatch.setattr(presence, "DEBOUNCE_S", 60.0)
    made: list[PresenceReporter] = []

    def make(realtime: SlowRealtime, counter: list[int] | None = None) -> PresenceReporter:
        made.append(_reporter(realtime, counter if counter is not None else [0]))
        return made[-1]

    yield make
    for reporter in made:
        reporter.close()


def test_a_task_end_far_from_capacity_is_announced_in_the_background() -> None:
    realtime = SlowRealtime(delay=0.0)
    counter = [0]
    reporter = _reporter(realtime, counter)
    try:
        # Concurrency 32: the backend counts 1 cooling slot; nowhere near full.
        reporter.task_ended(active=0, concurrency=32)
        assert realtime.sent == []  # nothing on the terminal's critical path
        deadline = time.monotonic() + 5
        while not realtime.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert realtime.sent == [{"activeTasks": 0}]
    finally:
        reporter.close()


def test_ends_are_announced_before_returning_once_the_backend_could_count_the_instance_full(
    quiet: Make,
) -> None:
    realtime = SlowRealtime(delay=0.0)
    counter = [0]
    reporter = quiet(realtime, counter)
    # Concurrency 16 (margin 8): 4 running + 5 unconfirmed ends + 8 > 16 on the fifth end.
    counter[0] = 4
    for _ in range(4):
        reporter.task_ended(active=4, concurrency=16)
    assert realtime.sent == []
    reporter.task_ended(active=4, concurrency=16)
    assert realtime.sent == [{"activeTasks": 4}]
    # That state covered all five ends: the next one is not urgent again.
    reporter.task_ended(active=4, concurrency=16)
    assert realtime.sent == [{"activeTasks": 4}]


def test_a_concurrency_of_one_announces_every_end_first_and_unlimited_never_blocks(
    quiet: Make,
) -> None:
    realtime = SlowRealtime(delay=0.0)
    counter = [0]
    reporter = quiet(realtime, counter)
    reporter.task_ended(active=0, concurrency=1)
    reporter.task_ended(active=0, concurrency=1)
    assert realtime.sent == [{"activeTasks": 0}, {"activeTasks": 0}]
    for _ in range(100):
        reporter.task_ended(active=50, concurrency=0)
    assert len(realtime.sent) == 2


def test_ends_stay_unconfirmed_while_sends_fail(quiet: Make) -> None:
    realtime = FlakyRealtime(failing={0})
    counter = [0]
    reporter = quiet(realtime, counter)
    reporter.task_ended(active=0, concurrency=1)  # urgent; its send fails
    assert realtime.sent == []
    # Still unconfirmed: with concurrency 8 (margin 4), 2 running + 2 ends + 4 > 8? No;
    # 3 running + 2 ends + 4 > 8: urgent.
    reporter.task_ended(active=3, concurrency=8)
    assert realtime.sent == [{"activeTasks": 0}]


def test_after_coming_near_capacity_ends_are_announced_first_for_a_while(
    quiet: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a burst the backend holds tasks for us that we have not seen yet: once near full,
    # every end is announced before its terminal until things calm down.
    realtime = SlowRealtime(delay=0.0)
    counter = [0]
    reporter = quiet(realtime, counter)
    reporter.active_changed(active=12, concurrency=16)  # near full: busy for a while
    reporter.task_ended(active=0, concurrency=16)  # far from full, but busy: at once
    assert len(realtime.sent) == 1
    monkeypatch.setattr(reporter, "_busy_until", 0.0)  # the hold passed
    reporter.task_ended(active=0, concurrency=16)
    assert len(realtime.sent) == 1  # lazily again
    reporter.active_changed(active=2, concurrency=16)  # far from full: stays lazy
    reporter.task_ended(active=0, concurrency=16)
    assert len(realtime.sent) == 1


class DownThenUp(SlowRealtime):
    """Refuses the first ``failures`` states (the network is down), then takes them."""

    def __init__(self, failures: int) -> None:
        super().__init__(delay=0.0)
        self.failures = failures
        self.attempts = 0

    def set_state(
        self, keyset: Keyset, channel: str, state: dict[str, Any], *, token: str | None
    ) -> bool:
        self.attempts += 1
        if self.attempts <= self.failures:
            return False
        return super().set_state(keyset, channel, state, token=token)


def test_resync_announces_at_once_and_retries_until_the_network_takes_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(presence, "RESYNC_RETRY", RetryPolicy(None, 0.01, 0.02))
    realtime = DownThenUp(failures=3)
    reporter = _reporter(realtime, [2])
    try:
        with caplog.at_level(logging.DEBUG, logger="blocks_network.agent.presence"):
            reporter.resync()
            deadline = time.monotonic() + 10
            while not realtime.sent:
                assert time.monotonic() < deadline, "the state was never announced again"
                time.sleep(0.01)
    finally:
        reporter.close()
    assert realtime.attempts == 4 and realtime.sent == [{"activeTasks": 2}]
    assert "presence state announced again after a reconnect" in caplog.text
