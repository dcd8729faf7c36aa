"""Timetokens: 17-digit integers, Unix time in units of 100 ns, strictly increasing."""

from __future__ import annotations

import time


def now_timetoken() -> int:
    return time.time_ns() // 100


class TimetokenClock:
    """Hands out unique, strictly increasing timetokens.

    Starting from ``floor`` (the largest timetoken already persisted) keeps cursors
    valid across a restart even if the wall clock stepped back.
    """

    def __init__(self, floor: int = 0) -> None:
        self._last = max(floor, now_timetoken())

    def next(self) -> int:
        candidate = now_timetoken()
        self._last = candidate if candidate > self._last else self._last + 1
        return self._last

    def head(self) -> int:
        """A cursor for "now": every message published afterwards gets a larger timetoken.

        It claims the current instant, so a later ``next()`` can never return it again.
        """
        now = now_timetoken()
        if now > self._last:
            self._last = now
        return self._last

    @property
    def last(self) -> int:
        return self._last
