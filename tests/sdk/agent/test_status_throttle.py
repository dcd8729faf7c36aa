"""report_status throttling on a fake clock (protocol §9.6)."""

from __future__ import annotations

from blocks_network.agent.status_throttle import Buffered, PublishNow, ScheduleFlush, StatusThrottle


def test_first_message_goes_out_at_once() -> None:
    assert StatusThrottle().offer("a", now=100.0) == PublishNow("a")


def test_messages_inside_the_window_are_buffered_latest_wins() -> None:
    throttle = StatusThrottle()
    throttle.offer("a", now=100.0)
    assert throttle.offer("b", now=100.2) == ScheduleFlush(at=101.0)
    assert throttle.offer("c", now=100.5) == Buffered()
    assert throttle.pending == "c"
    assert throttle.due(now=100.9) is None  # too early: still buffered
    assert throttle.due(now=101.0) == "c"
    assert throttle.pending is None


def test_window_reopens_after_a_flush() -> None:
    throttle = StatusThrottle()
    throttle.offer("a", now=0.0)
    throttle.offer("b", now=0.5)
    assert throttle.due(now=1.0) == "b"
    # The flush counts as a publish: the next message waits for its own second.
    assert throttle.offer("c", now=1.5) == ScheduleFlush(at=2.0)
    assert throttle.offer("d", now=2.5) == Buffered()
    assert throttle.due(now=2.6) == "d"


def test_after_a_quiet_second_messages_go_out_directly() -> None:
    throttle = StatusThrottle()
    assert throttle.offer("a", now=0.0) == PublishNow("a")
    assert throttle.offer("b", now=1.0) == PublishNow("b")
    assert throttle.offer("c", now=5.0) == PublishNow("c")


def test_clear_drops_the_buffer_and_a_late_timer_publishes_nothing() -> None:
    throttle = StatusThrottle()
    throttle.offer("a", now=0.0)
    throttle.offer("b", now=0.1)
    throttle.clear()
    assert throttle.pending is None
    assert throttle.due(now=5.0) is None


def test_custom_window() -> None:
    throttle = StatusThrottle(window_s=0.25)
    throttle.offer("a", now=0.0)
    assert throttle.offer("b", now=0.1) == ScheduleFlush(at=0.25)
