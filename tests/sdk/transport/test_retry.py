"""RetryPolicy: the SDK's one back-off schedule, and a wait that a stop ends at once."""

from __future__ import annotations

import threading

from blocks_network.transport.retry import RECONNECT, TRANSIENT, RetryPolicy


def test_delays_double_up_to_the_cap_and_stop_after_the_attempts() -> None:
    policy = RetryPolicy(attempts=5, base_s=1.0, cap_s=3.0)
    assert [policy.delay(n) for n in range(6)] == [None, 1.0, 2.0, 3.0, 3.0, None]


def test_jitter_scales_each_delay_within_its_range() -> None:
    for failures in range(1, 8):
        delay = RECONNECT.delay(failures)
        base = min(0.5 * 2 ** (failures - 1), 5.0)
        assert delay is not None and 0.5 * base <= delay <= base
    assert RECONNECT.attempts is None  # follows the network until stopped
    first = TRANSIENT.delay(1)
    assert first is not None and 0.5 <= first <= 0.6
    assert TRANSIENT.delay(3) is None  # three tries in all


def test_backoff_returns_false_at_once_when_stopped_or_out_of_attempts() -> None:
    stop = threading.Event()
    policy = RetryPolicy(attempts=2, base_s=0.001, cap_s=0.001)
    assert policy.backoff(1, stop)
    assert not policy.backoff(2, stop)  # attempts used up
    stop.set()
    assert not RetryPolicy(attempts=None, base_s=3600.0, cap_s=3600.0).backoff(1, stop)
