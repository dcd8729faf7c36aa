"""RefreshPolicy/RefreshTiming on a fake clock: 80 % of TTL, 1 s floor, 5 s/10 s retries, one report."""

from __future__ import annotations

import pytest

from blocks_network.auth.refresh_policy import RefreshPolicy, RefreshTiming
from tests.support.fake_clock import FakeClock


@pytest.mark.parametrize(
    ("expires_in", "delay"), [(60, 48.0), (10, 8.0), (1.0, 1.0), (0.5, 1.0), (0, 1.0), (-5, 1.0)]
)
def test_refresh_delay_is_80_percent_of_ttl_with_a_one_second_floor(
    expires_in: float, delay: float
) -> None:
    assert RefreshTiming().refresh_delay(expires_in) == pytest.approx(delay)


def test_retry_delays_are_5_then_10_then_give_up() -> None:
    timing = RefreshTiming()
    assert [timing.retry_delay(n) for n in (1, 2, 3, 4)] == [5.0, 10.0, None, None]
    assert timing.retry_delay(0) is None


def test_retry_delay_is_capped() -> None:
    timing = RefreshTiming(attempts=10)
    assert [timing.retry_delay(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 30.0, 30.0]


def test_due_time_and_expiry_follow_the_clock() -> None:
    clock = FakeClock()
    policy = RefreshPolicy(clock=clock)
    assert policy.due_in() is None and policy.is_expired()
    assert policy.token_issued(100) == pytest.approx(80.0)
    clock.now += 79.5
    assert policy.due_in() == pytest.approx(0.5)
    assert not policy.is_expired()
    clock.now += 1
    assert policy.due_in() == pytest.approx(-0.5)
    clock.now += 20
    assert policy.is_expired()


def test_third_consecutive_failure_reports_once_and_success_resets() -> None:
    policy = RefreshPolicy(clock=FakeClock())
    policy.token_issued(60)
    assert policy.attempt_failed() == (5.0, False)
    assert policy.attempt_failed() == (10.0, False)
    assert policy.attempt_failed() == (None, True)
    assert policy.attempt_failed() == (None, False)  # reported once per streak
    assert policy.failures == 4
    policy.token_issued(60)
    assert policy.failures == 0
    assert policy.attempt_failed() == (5.0, False)
