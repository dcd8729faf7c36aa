"""RetryPolicy: the SDK's one back-off schedule, and a wait that a stop ends at once."""

from __future__ import annotations

import threading

import pytest

from blocks_network.errors import ClosedError
from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.publisher import STREAM_PUBLISH, TokenPublisher
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.retry import RECONNECT, TRANSIENT, RetryPolicy
from tests.sdk.stub_server import dead_url
from tests.support.threads import start_call

KEYS = Keyset("pub", "sub")


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


def test_a_fixed_schedule_gives_the_protocols_waits() -> None:
    assert [STREAM_PUBLISH.delay(n) for n in range(4)] == [None, 0.1, 0.2, None]
    repeating = RetryPolicy(attempts=None, schedule=(1.0, 2.0))
    assert [repeating.delay(n) for n in (1, 2, 3, 9)] == [1.0, 2.0, 2.0, 2.0]


def test_retry_after_is_ended_by_close_from_another_thread() -> None:
    # An hour between tries: only the stop event can end the wait before the join's timeout.
    policy = RetryPolicy(attempts=3, base_s=3600.0, cap_s=3600.0)
    stop = threading.Event()
    waiting = threading.Event()

    def retry() -> None:
        waiting.set()
        policy.retry_after(1, stop, lambda: ClosedError("closed"))

    thread, errors = start_call(retry)
    assert waiting.wait(10)
    stop.set()  # what close() does
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ClosedError)
    with pytest.raises(ClosedError):  # once stopped, no wait at all
        policy.retry_after(1, stop)
    assert not RetryPolicy(attempts=1).retry_after(1, threading.Event())  # out of tries


def test_a_publishers_retries_stop_when_it_is_closed() -> None:
    publisher = TokenPublisher(RealtimeEndpoint(dead_url().removeprefix("http://"), False), KEYS)
    publisher.close()
    with pytest.raises(ClosedError):
        publisher.post_with_retries("/publish/p/s/0/c/0", b"{}")
