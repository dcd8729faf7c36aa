"""The reader's reorder buffer (protocol §8.4): in-order delivery by ``seq``, without I/O.

Frames may arrive out of order (concurrent publishes) or twice (replays). The buffer releases
items in ``seq`` order starting at the stream's first seq, drops duplicates (first wins) and
late arrivals, and holds out-of-order items. One gap timer starts when the first gap appears;
when it expires the buffer skips to the lowest held seq (the missing frames are given up).
``end(seq)`` marks the end: later data at or past that seq is dropped, and the buffer is
complete once everything before it was delivered or skipped (a tail gap waits for the timer).

A window of 0 disables reordering: items are released as they arrive (duplicates still
dropped) and ``end`` completes at once. The clock is passed in (seconds, monotonic), so the
class is pure and not thread-safe: the owner serialises calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, TypeVar

__all__ = ["DEFAULT_MAX_PENDING", "ReorderBuffer"]

T = TypeVar("T")

#: Held items beyond this force a skip, so a lost frame cannot grow memory without bound.
DEFAULT_MAX_PENDING: Final = 4096
#: Sequence numbers remembered for duplicate detection when reordering is disabled.
_SEEN_LIMIT: Final = 8192

SkipCallback = Callable[[int, int], None]


class ReorderBuffer(Generic[T]):
    """Releases items in ``seq`` order; see the module docstring for the rules.

    ``window_s`` is the gap timeout in seconds (0 disables reordering). ``on_skip(first,
    last)`` is told about each range of sequence numbers given up after a timeout.
    """

    def __init__(
        self,
        first_seq: int,
        window_s: float,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_skip: SkipCallback | None = None,
    ) -> None:
        if window_s < 0:
            raise ValueError(f"reorder window must be ≥ 0 seconds, got {window_s}")
        self._expected = first_seq
        self._window_s = window_s
        self._max_pending = max_pending
        self._on_skip = on_skip
        self._held: dict[int, T] = {}
        self._deadline: float | None = None
        self._end_seq: int | None = None
        self._complete = False
        self._seen: OrderedDict[int, None] = OrderedDict()
        self.duplicates = 0
        self.skipped = 0

    @property
    def expected(self) -> int:
        """The next sequence number to release (ordered mode)."""
        return self._expected

    @property
    def end_seq(self) -> int | None:
        """The end marker's seq once ``end`` was called."""
        return self._end_seq

    @property
    def pending(self) -> int:
        """Number of items held back waiting for a gap to fill."""
        return len(self._held)

    @property
    def deadline(self) -> float | None:
        """When :meth:`poll` must be called next (clock seconds), or None if no gap is open."""
        return self._deadline

    @property
    def complete(self) -> bool:
        """True once the end was seen and everything before it was released or skipped."""
        return self._complete

    def push(self, seq: int, item: T, now: float) -> list[T]:
        """Offer one item; return the items now releasable, in order (maybe empty)."""
        if self._complete or (self._end_seq is not None and seq >= self._end_seq):
            self.duplicates += 1
            return []
        if self._window_s == 0:
            return self._push_unordered(seq, item)
        if seq < self._expected or seq in self._held:
            self.duplicates += 1
            return []
        self._held[seq] = item
        released = self._drain()
        if len(self._held) > self._max_pending:
            released += self._skip_to_lowest()
        self._settle(now)
        return released

    def end(self, seq: int, now: float) -> list[T]:
        """Mark the end at ``seq`` (first end wins); return items now releasable."""
        if self._end_seq is not None:
            return []
        self._end_seq = seq
        for stale in [s for s in self._held if s >= seq]:
            del self._held[stale]
        if self._window_s == 0:
            self._complete = True
            return []
        released = self._drain()
        self._settle(now)
        return released

    def poll(self, now: float) -> list[T]:
        """Fire the gap timer if due: skip to the lowest held seq; return items released."""
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        released: list[T] = []
        if self._held:
            released = self._skip_to_lowest()
        elif self._end_seq is not None and self._expected < self._end_seq:
            self._report_skip(self._expected, self._end_seq - 1)
            self._expected = self._end_seq
        self._settle(now)
        return released

    def _push_unordered(self, seq: int, item: T) -> list[T]:
        if seq in self._seen:
            self.duplicates += 1
            return []
        self._seen[seq] = None
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
        return [item]

    def _drain(self) -> list[T]:
        released: list[T] = []
        while self._expected in self._held:
            released.append(self._held.pop(self._expected))
            self._expected += 1
        return released

    def _skip_to_lowest(self) -> list[T]:
        lowest = min(self._held)
        self._report_skip(self._expected, lowest - 1)
        self._expected = lowest
        return self._drain()

    def _report_skip(self, first: int, last: int) -> None:
        if last < first:
            return
        self.skipped += last - first + 1
        if self._on_skip is not None:
            self._on_skip(first, last)

    def _settle(self, now: float) -> None:
        # Decide completion and whether a timer must run (a held gap or a tail gap).
        if self._end_seq is not None and self._expected >= self._end_seq:
            self._complete = True
            self._deadline = None
            self._held.clear()
            return
        gap_open = bool(self._held) or (
            self._end_seq is not None and self._expected < self._end_seq
        )
        if not gap_open:
            self._deadline = None
        elif self._deadline is None:
            self._deadline = now + self._window_s
