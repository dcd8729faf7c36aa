"""The overview's "tasks by state": exact counts, recomputed at most every few seconds.

Counting a viewer's tasks by state reads every task they may see (~40-65 ms at 100,000
tasks, more on a loaded machine), and an open overview renders every 0.5 s. Rather than
keep a counter on the task store's write path, each viewer's counts are kept for
:data:`MIN_AGE_SECONDS`, or :data:`COST_FACTOR` times what computing them took when that
is longer, so counting takes at most 1/COST_FACTOR of the server however large the
history grows (docs/dashboard.md, "Scale").
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from blocks_devnet.backend.context import BackendContext
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks.store import visible_clause
from blocks_devnet.store.database import Database

#: Counts are at most this old when nothing makes them expensive (seconds).
MIN_AGE_SECONDS: Final = 1.0
#: Counts that took t seconds to compute are kept COST_FACTOR * t seconds.
COST_FACTOR: Final = 50
#: Viewers whose counts are kept (the least recently computed are forgotten first).
MAX_VIEWERS: Final = 1000


@dataclass(frozen=True)
class _Entry:
    counts: dict[str, int]
    computed_at: float
    keep_for: float


def count_by_state(db: Database, principal: Principal) -> dict[str, int]:
    """The principal's visible tasks by state, counted now (the condition ListTasks uses)."""
    visible, params = visible_clause(principal.user_id, principal.org_id)
    rows = db.query(
        f"SELECT state, COUNT(*) AS n FROM tasks WHERE {visible} GROUP BY state", params
    )
    return {str(row["state"]): int(row["n"]) for row in rows}


class StateCounts:
    """Per-viewer counts by state, kept while younger than their age limit."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}

    def get(self, principal: Principal) -> dict[str, int]:
        key = (principal.user_id, principal.org_id)
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry.computed_at < entry.keep_for:
            return entry.counts
        counts = count_by_state(self._db, principal)
        cost = self._clock() - now
        self._entries.pop(key, None)  # re-inserted last: the dict is oldest-computed first
        if len(self._entries) >= MAX_VIEWERS:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(counts, now, max(MIN_AGE_SECONDS, cost * COST_FACTOR))
        return counts


#: One cache per database (a network's backend context is not hashable; its database is).
_CACHES: Final[weakref.WeakKeyDictionary[Database, StateCounts]] = weakref.WeakKeyDictionary()


def state_counts(ctx: BackendContext, principal: Principal) -> dict[str, int]:
    """The principal's tasks by state, at most a few seconds old (see the module doc)."""
    cache = _CACHES.get(ctx.db)
    if cache is None:
        cache = _CACHES[ctx.db] = StateCounts(ctx.db)
    return cache.get(principal)
