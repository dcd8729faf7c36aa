"""Task ids this instance accepted recently, so a StartTask seen again is not run twice.

The network may deliver a StartTask again — a control long-poll that resumes from its cursor
after the network restarted, or a network that re-dispatches a task it had already sent. The
runner guards tasks in flight; this remembers those already finished, bounded in both count
(:data:`MAX_REMEMBERED`) and age (:data:`REMEMBER_S`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_REMEMBERED", "REMEMBER_S", "RecentTasks"]

MAX_REMEMBERED: Final = 10_000
REMEMBER_S: Final = 3600.0


class RecentTasks:
    """A bounded set of task ids with their acceptance time. Thread-safe."""

    def __init__(
        self,
        limit: int = MAX_REMEMBERED,
        max_age_s: float = REMEMBER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: OrderedDict[str, float] = OrderedDict()

    def add(self, task_id: str) -> None:
        now = self._clock()
        with self._lock:
            self._ids[task_id] = now
            self._ids.move_to_end(task_id)
            self._expire(now)

    def __contains__(self, task_id: object) -> bool:
        with self._lock:
            self._expire(self._clock())
            return task_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def _expire(self, now: float) -> None:
        ids = self._ids
        while ids and (len(ids) > self._limit or now - next(iter(ids.values())) > self._max_age_s):
            ids.popitem(last=False)
