"""When to refresh a token and when to give up: pure timing, no threads, no I/O (§6).

- Proactive refresh at 80 % of the token's lifetime, never sooner than 1 s.
- A failed proactive refresh is retried after 5 s, then 10 s (``min(5·2^n, 30)``); the
  third consecutive failure is reported once (``on_auth_error``) and the stale token is kept.

:class:`RefreshPolicy` keeps the per-token bookkeeping on an injectable monotonic clock so
the timing can be tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from blocks_network.transport.retry import RetryPolicy

__all__ = ["DEFAULT_TIMING", "RefreshPolicy", "RefreshTiming"]


@dataclass(frozen=True)
class RefreshTiming:
    """The constants of the refresh schedule."""

    fraction: float = 0.8
    minimum_s: float = 1.0
    attempts: int = 3
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 30.0

    def refresh_delay(self, expires_in: float) -> float:
        """Seconds from issue to proactive refresh: ``max(minimum_s, fraction · expires_in)``."""
        return max(self.minimum_s, self.fraction * max(0.0, expires_in))

    def retry_delay(self, failures: int) -> float | None:
        """Seconds to wait after ``failures`` consecutive failed attempts, or None to give up.

        ``retry_delay(1) == 5``, ``retry_delay(2) == 10``, ``retry_delay(3) is None``.
        """
        return self.retry.delay(failures)

    @property
    def retry(self) -> RetryPolicy:
        """The schedule as the SDK's retry policy (no jitter: one timer per client)."""
        return RetryPolicy(self.attempts, self.backoff_base_s, self.backoff_cap_s)


DEFAULT_TIMING: Final = RefreshTiming()


class RefreshPolicy:
    """Bookkeeping for one credential: expiry, due time and the failure streak.

    Not thread-safe on its own; ``ConsumerAuth`` calls it under its lock.
    """

    def __init__(
        self, timing: RefreshTiming = DEFAULT_TIMING, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timing = timing
        self._clock = clock
        self._expires_at: float | None = None
        self._due_at: float | None = None
        self._failures = 0
        self._reported = False

    @property
    def failures(self) -> int:
        """Consecutive failed refresh attempts since the last success."""
        return self._failures

    def token_issued(self, expires_in: float) -> float:
        """Record a fresh token; returns the delay until its proactive refresh.

        Clears the failure streak.
        """
        now = self._clock()
        delay = self.timing.refresh_delay(expires_in)
        self._expires_at = now + max(0.0, expires_in)
        self._due_at = now + delay
        self._failures = 0
        self._reported = False
        return delay

    def due_in(self) -> float | None:
        """Seconds until the proactive refresh is due (≤ 0 when overdue); None with no token."""
        return None if self._due_at is None else self._due_at - self._clock()

    def is_expired(self) -> bool:
        """True once the current token's lifetime has passed (or there is no token)."""
        return self._expires_at is None or self._clock() >= self._expires_at

    def attempt_failed(self) -> tuple[float | None, bool]:
        """Record a failed attempt; returns ``(retry delay or None, report_now)``.

        ``report_now`` is True exactly once per streak, when it reaches ``timing.attempts``.
        """
        self._failures += 1
        report = self._failures >= self.timing.attempts and not self._reported
        if report:
            self._reported = True
        return self.timing.retry_delay(self._failures), report
