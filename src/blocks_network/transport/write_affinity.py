"""Write affinity (protocol.md §10.3): echo the backend's latest hint until it expires."""

from __future__ import annotations

import math
import threading
import time

from blocks_network.protocol.constants import WRITE_AFFINITY_HEADER


class WriteAffinity:
    """Keeps the largest finite ``X-Write-Affinity`` expiry seen; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expires_at = 0.0

    def observe(self, value: str | None) -> None:
        if not value:
            return
        try:
            expires_at = float(value)
        except ValueError:
            return
        if not math.isfinite(expires_at):
            return
        with self._lock:
            self._expires_at = max(self._expires_at, expires_at)

    def header(self, now: float | None = None) -> dict[str, str]:
        """``{X-Write-Affinity: ...}`` while the hint is valid, else ``{}``."""
        current = time.time() if now is None else now
        with self._lock:
            if self._expires_at <= current:
                self._expires_at = 0.0
                return {}
            value = self._expires_at
        text = str(int(value)) if value.is_integer() else str(value)
        return {WRITE_AFFINITY_HEADER: text}


#: One per process, as the protocol describes.
PROCESS_WRITE_AFFINITY = WriteAffinity()
