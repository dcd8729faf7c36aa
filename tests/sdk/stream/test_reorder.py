"""The reorder buffer on a fake clock: order, dedup, one gap timer, end handling, window 0."""

from __future__ import annotations

import pytest

from blocks_network.stream.reorder import ReorderBuffer

W = 0.75


def make(
    first: int = 0, window: float = W, **kw: object
) -> tuple[ReorderBuffer[str], list[tuple[int, int]]]:
    skips: list[tuple[int, int]] = []
    buf: ReorderBuffer[str] = ReorderBuffer(
        first,
        window,
        on_skip=lambda a, b: skips.append((a, b)),
        **kw,  # type: ignore[arg-type]
    )
    return buf, skips


def test_in_order_items_pass_straight_through() -> None:
    buf, _ = make()
    assert buf.push(0, "a", 0.0) == ["a"]
    assert buf.push(1, "b", 0.0) == ["b"]
    assert buf.deadline is None and buf.pending == 0


def test_events_streams_start_at_one() -> None:
    buf, _ = make(first=1)
    assert buf.push(0, "zero", 0.0) == []
    assert buf.push(1, "one", 0.0) == ["one"]


def test_out_of_order_is_held_until_the_gap_fills() -> None:
    buf, _ = make()
    assert buf.push(0, "a", 0.0) == ["a"]
    assert buf.push(2, "c", 0.1) == []
    assert buf.push(3, "d", 0.2) == []
    assert buf.deadline == pytest.approx(0.1 + W)
    assert buf.push(1, "b", 0.3) == ["b", "c", "d"]
    assert buf.deadline is None


def test_duplicates_are_dropped_first_wins() -> None:
    buf, _ = make()
    buf.push(0, "a", 0.0)
    assert buf.push(0, "a-again", 0.0) == []
    assert buf.push(2, "c", 0.0) == []
    assert buf.push(2, "c-again", 0.0) == []
    assert buf.push(1, "b", 0.0) == ["b", "c"]
    assert buf.duplicates == 2


def test_one_timer_from_the_first_gap_then_skip_to_lowest() -> None:
    buf, skips = make()
    buf.push(0, "a", 0.0)
    buf.push(3, "d", 1.0)
    buf.push(5, "f", 1.5)  # does not restart the timer
    assert buf.deadline == pytest.approx(1.0 + W)
    assert buf.poll(1.0 + W - 0.01) == []
    assert buf.poll(1.0 + W) == ["d"]
    assert skips == [(1, 2)]
    # The remaining gap (4) gets a new timer from the expiry.
    assert buf.deadline == pytest.approx(1.0 + 2 * W)
    assert buf.poll(1.0 + 2 * W) == ["f"]
    assert skips == [(1, 2), (4, 4)]
    assert buf.expected == 6 and buf.deadline is None


def test_late_frame_after_skip_is_dropped() -> None:
    buf, _ = make()
    buf.push(1, "b", 0.0)
    assert buf.poll(W) == ["b"]
    assert buf.push(0, "a", W + 0.1) == []


def test_end_completes_when_everything_before_it_arrived() -> None:
    buf, _ = make()
    buf.push(0, "a", 0.0)
    buf.push(2, "c", 0.0)
    assert buf.end(3, 0.0) == []
    assert not buf.complete
    assert buf.push(1, "b", 0.1) == ["b", "c"]
    assert buf.complete


def test_data_at_or_after_end_seq_is_dropped() -> None:
    buf, _ = make()
    buf.push(0, "a", 0.0)
    buf.push(5, "late", 0.0)
    buf.end(2, 0.0)
    assert buf.pending == 0
    assert buf.push(3, "x", 0.0) == []
    assert buf.push(1, "b", 0.0) == ["b"]
    assert buf.complete


def test_tail_gap_is_resolved_by_the_timer() -> None:
    buf, skips = make()
    buf.push(0, "a", 0.0)
    buf.end(3, 1.0)
    assert not buf.complete
    assert buf.deadline == pytest.approx(1.0 + W)
    assert buf.poll(1.0 + W) == []
    assert buf.complete
    assert skips == [(1, 2)]


def test_end_marker_first_wins() -> None:
    buf, _ = make()
    buf.end(1, 0.0)
    buf.end(5, 0.0)
    assert buf.end_seq == 1
    assert buf.push(0, "a", 0.0) == ["a"]
    assert buf.complete


def test_too_many_held_items_force_a_skip() -> None:
    buf, skips = make(max_pending=3)
    for seq in (2, 3, 4):
        assert buf.push(seq, str(seq), 0.0) == []
    assert buf.push(5, "5", 0.0) == ["2", "3", "4", "5"]
    assert skips == [(0, 1)]


def test_window_zero_releases_in_arrival_order_and_dedups() -> None:
    buf, _ = make(window=0)
    assert buf.push(2, "c", 0.0) == ["c"]
    assert buf.push(0, "a", 0.0) == ["a"]
    assert buf.push(2, "c2", 0.0) == []
    assert buf.deadline is None
    buf.end(3, 0.0)
    assert buf.complete
    assert buf.push(1, "b", 0.0) == []


def test_negative_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="reorder window"):
        ReorderBuffer(0, -1)
