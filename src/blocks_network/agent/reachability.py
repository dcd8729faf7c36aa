"""Whether the realtime network answers, as the instance's log tells it: one WARNING when
it stops answering (naming the host, never a request path or token), DEBUG for each retry
while it stays down, one INFO "reconnected ... after N s" when it answers again.

The control channel's long-poll, presence updates and heartbeats all report here, so an
outage is one story in the log however many requests fail during it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Reachability"]

logger = logging.getLogger(__name__)


class Reachability:
    """Tracks one network host's outages; thread-safe."""

    def __init__(self, host: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.host = host
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        with self._lock:
            return self._down_since is not None

    def failed(self, what: str, detail: str) -> None:
        """A request to the network failed for a network reason (refused, reset, 5xx)."""
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = self._clock()
        if first:
            logger.warning(
                "lost the connection to the network at %s (%s: %s); retrying until it answers, "
                "task events wait meanwhile",
                self.host,
                what,
                detail,
            )
        else:
            logger.debug("%s failed while the network is down: %s", what, detail)

    def answered(self) -> None:
        """A request to the network succeeded."""
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.info(
                "reconnected to the network at %s after %.1f s", self.host, self._clock() - since
            )
