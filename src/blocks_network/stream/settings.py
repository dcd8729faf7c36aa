"""Writer tuning (protocol §8.3): batching size and latency, and the largest message.

Resolution per value: explicit option → environment variable → protocol default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from blocks_network.protocol.constants import (
    ENV_STREAM_BUNDLE_SIZE,
    ENV_STREAM_MAX_LATENCY_MS,
    ENV_STREAM_MAX_MESSAGE_SIZE,
    MULTIPART_OVERHEAD_BYTES,
    STREAM_BUNDLE_SIZE_BYTES,
    STREAM_MAX_LATENCY_MS,
    STREAM_MAX_MESSAGE_SIZE_BYTES,
)

from .errors import StreamOptionsError

__all__ = ["WriterSettings"]

logger = logging.getLogger(__name__)

#: Below this a split piece would carry almost nothing (protocol multipart overhead is 512).
_MIN_MESSAGE_SIZE = MULTIPART_OVERHEAD_BYTES * 2


@dataclass(frozen=True)
class WriterSettings:
    """``bundle_size_bytes``: flush once this much is buffered; ``max_latency_ms``: flush this
    long after the first unflushed write (0 = every write is sent at once);
    ``max_message_size``: larger frames are split (multipart)."""

    bundle_size_bytes: int = STREAM_BUNDLE_SIZE_BYTES
    max_latency_ms: int = STREAM_MAX_LATENCY_MS
    max_message_size: int = STREAM_MAX_MESSAGE_SIZE_BYTES

    def __post_init__(self) -> None:
        if self.bundle_size_bytes < 1:
            raise StreamOptionsError(f"bundle_size_bytes must be ≥ 1, got {self.bundle_size_bytes}")
        if self.max_latency_ms < 0:
            raise StreamOptionsError(f"max_latency_ms must be ≥ 0, got {self.max_latency_ms}")
        if self.max_message_size < _MIN_MESSAGE_SIZE:
            raise StreamOptionsError(
                f"the max message size must be ≥ {_MIN_MESSAGE_SIZE} bytes, "
                f"got {self.max_message_size} (check {ENV_STREAM_MAX_MESSAGE_SIZE})"
            )

    @classmethod
    def resolve(
        cls,
        *,
        bundle_size_bytes: int | None = None,
        max_latency_ms: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> WriterSettings:
        """Settings from explicit options, then ``env`` (default ``os.environ``), then defaults.

        Raises StreamOptionsError for a non-integer or out-of-range value.
        """
        source = os.environ if env is None else env
        return cls(
            bundle_size_bytes=_pick(
                "bundle_size_bytes",
                bundle_size_bytes,
                source,
                ENV_STREAM_BUNDLE_SIZE,
                STREAM_BUNDLE_SIZE_BYTES,
            ),
            max_latency_ms=_pick(
                "max_latency_ms",
                max_latency_ms,
                source,
                ENV_STREAM_MAX_LATENCY_MS,
                STREAM_MAX_LATENCY_MS,
            ),
            max_message_size=_pick(
                "max message size",
                None,
                source,
                ENV_STREAM_MAX_MESSAGE_SIZE,
                STREAM_MAX_MESSAGE_SIZE_BYTES,
            ),
        )


def _pick(name: str, explicit: object, env: Mapping[str, str], var: str, default: int) -> int:
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int):
            raise StreamOptionsError(f"{name} must be an integer, got {explicit!r}")
        return explicit
    raw = env.get(var, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StreamOptionsError(f"{var} must be an integer, got {raw!r}") from None
