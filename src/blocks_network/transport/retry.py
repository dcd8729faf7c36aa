"""The SDK's one retry/back-off policy: how often, and how far apart, a failure is retried.

Every back-off in the SDK waits on a :class:`threading.Event` its owner sets in
``close()``/``stop()``, so closing never waits out a back-off; :class:`RetryPolicy` holds
the numbers and the wait, the loops keep their own meaning of failure and success.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from blocks_network.errors import ClosedError

__all__ = ["RECONNECT", "TRANSIENT", "RetryPolicy", "pause", "wait"]

_STOPPED: Final = "stopped while waiting to retry; create a new client to send again"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off: after ``n`` consecutive failures wait
    ``min(base_s · 2^(n-1), cap_s)`` times a uniform draw from ``jitter``.

    ``attempts`` counts tries in all (the first included); None retries until stopped.
    ``schedule``, when given, lists the waits instead (the n-th failure waits
    ``schedule[n-1]``, the last repeating), for protocols that fix them.
    ``transient`` are the exceptions worth another try (network failures; a certificate
    that does not verify is a ``ConfigError`` and fails the same way again).
    """

    attempts: int | None = 3
    base_s: float = 0.5
    cap_s: float = 5.0
    jitter: tuple[float, float] = (1.0, 1.0)
    transient: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
    schedule: tuple[float, ...] | None = None

    def delay(self, failures: int) -> float | None:
        """Seconds to wait after ``failures`` consecutive failures, or None to give up."""
        if failures < 1 or (self.attempts is not None and failures >= self.attempts):
            return None
        if self.schedule:
            base = self.schedule[min(failures, len(self.schedule)) - 1]
        else:
            base = min(self.base_s * 2.0 ** (failures - 1), self.cap_s)
        low, high = self.jitter
        return base if low == high == 1.0 else base * random.uniform(low, high)

    def backoff(self, failures: int, stop: threading.Event) -> bool:
        """Wait the delay after ``failures`` failures; False (at once) when the attempts are
        used up, or as soon as ``stop`` is set: then the caller stops retrying."""
        delay = self.delay(failures)
        return delay is not None and wait(delay, stop)

    def retry_after(
        self,
        failures: int,
        stop: threading.Event,
        closed: Callable[[], ClosedError] = lambda: ClosedError(_STOPPED),
    ) -> bool:
        """Wait the delay after ``failures`` failures and return True (try again), or False
        at once when the attempts are used up. Raises ``closed()`` when ``stop`` is set,
        before or during the wait: closing a client ends its retries at once."""
        if stop.is_set():
            raise closed()
        delay = self.delay(failures)
        if delay is None:
            return False
        pause(delay, stop, closed)
        return True


#: One request's transient failures (protocol.md §4.1, §10.2): 3 tries, 0.5 s then 1 s apart.
TRANSIENT: Final = RetryPolicy(attempts=3, base_s=0.5, cap_s=5.0, jitter=(1.0, 1.2))
#: Loops that follow the network until stopped (subscribe polls, presence re-announce): from
#: 0.5 s doubling to 5 s, jittered down so a restarted network is not hit all at once.
RECONNECT: Final = RetryPolicy(attempts=None, base_s=0.5, cap_s=5.0, jitter=(0.5, 1.0))


def wait(seconds: float, stop: threading.Event) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when the whole time passed."""
    return not stop.wait(seconds)


def pause(
    seconds: float,
    stop: threading.Event,
    closed: Callable[[], ClosedError] = lambda: ClosedError(_STOPPED),
) -> None:
    """Sleep ``seconds``; raises ``closed()`` as soon as ``stop`` is set (at once if it is)."""
    if stop.wait(seconds):
        raise closed()
