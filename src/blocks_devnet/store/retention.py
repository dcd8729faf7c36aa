"""Old rows leave the database in small batches, off the hot path.

Components register *sweeps*: ``sweep(limit)`` deletes at most ``limit`` rows it no longer
needs and returns how many went. :class:`Sweeper` runs every sweep every
``interval_s``, a batch per event-loop turn, until a batch comes back short: a backlog
(days of history after a restart with a shorter retention) drains without holding the loop
longer than one batch (~a few ms) at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Rows one batch deletes at most (a few milliseconds of the loop).
SWEEP_BATCH_ROWS = 500
#: How often every sweep runs.
SWEEP_INTERVAL_SECONDS = 10.0
#: Default retention of task history and finished task records on a local network.
DEFAULT_RETENTION_DAYS = 7.0

Sweep = Callable[[int], int]


@dataclass(frozen=True)
class Retention:
    """How long task history and finished task records are kept; ``None``: for ever."""

    seconds: float | None

    @classmethod
    def days(cls, days: float) -> Retention:
        """``days`` days; 0 keeps everything."""
        if days < 0:
            raise ValueError(f"retention must be 0 (keep forever) or more days, got {days}")
        return cls(None if days == 0 else days * 86_400.0)


class Sweeper:
    """Runs the registered sweeps periodically on the event loop (see the module doc)."""

    def __init__(
        self,
        *,
        batch_rows: int = SWEEP_BATCH_ROWS,
        interval_s: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        self._sweeps: list[tuple[str, Sweep]] = []
        self.batch_rows = batch_rows
        self.interval_s = interval_s

    def add(self, name: str, sweep: Sweep) -> None:
        self._sweeps.append((name, sweep))

    async def run(self) -> None:
        """Sweep every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.sweep_all()

    async def sweep_all(self) -> dict[str, int]:
        """Run every sweep to the end of its backlog, one batch per loop turn; returns the
        rows each deleted."""
        removed: dict[str, int] = {}
        for name, sweep in self._sweeps:
            removed[name] = 0
            while True:
                count = self._batch(name, sweep)
                removed[name] += max(0, count)
                if count < self.batch_rows:
                    break
                await asyncio.sleep(0)  # let every waiting client in between batches
        if any(removed.values()):
            logger.debug("swept %s", ", ".join(f"{n} {name}" for name, n in removed.items() if n))
        return removed

    def sweep_all_now(self) -> dict[str, int]:
        """Like :meth:`sweep_all`, without yielding between batches (tests, tools)."""
        removed: dict[str, int] = {}
        for name, sweep in self._sweeps:
            removed[name] = 0
            while (count := self._batch(name, sweep)) > 0:
                removed[name] += count
        return removed

    def _batch(self, name: str, sweep: Sweep) -> int:
        """One batch of ``sweep``; -1 when it failed (logged; retried next round)."""
        try:
            return sweep(self.batch_rows)
        except Exception:
            logger.exception("sweeping %s failed; retried next round", name)
            return -1
