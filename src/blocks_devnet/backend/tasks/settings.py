"""Timing knobs of the task service: a validated, frozen dataclass with named defaults."""

from __future__ import annotations

from dataclasses import dataclass

from blocks_devnet.backend.config import DEFAULT_SCAN_INTERVAL_SECONDS
from blocks_devnet.backend.tasks.dispatch import (
    DEFAULT_LIVENESS_GRACE_SECONDS,
    DEFAULT_RELEASE_GRACE_SECONDS,
)
from blocks_network.protocol.constants import (
    STREAM_DRAIN_WINDOW_S,
    STREAM_FALLBACK_MAX_RUNNING_TIME_S,
)

#: After ExpireTask, how long the instance has to publish its own terminal.
DEFAULT_EXPIRE_GRACE_SECONDS = 10.0
#: After a (re)start, presence is empty until instances poll again: wait this long before
#: treating an instance that holds tasks as gone (agents retry their subscribe and send
#: a heartbeat every 9 s, so a live one is back well within it).
DEFAULT_OFFLINE_STARTUP_GRACE_SECONDS = 12.0
#: Queued tasks of an agent with no instance online fail after this long.
DEFAULT_ORPHAN_QUEUE_SECONDS = 30.0
#: How often queued tasks are offered to instances whose slots freed up.
DEFAULT_PUMP_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True)
class TaskSettings:
    """How the task service times its safety net.

    ``stream_revoke_delay_seconds`` is how long consumer stream tokens (T7c) survive a
    terminal (the consumer's drain window); ``default_max_running_time_seconds`` applies to
    request tasks of agents that declare no ``maxRunningTimeSec``.
    """

    scan_interval_seconds: float = DEFAULT_SCAN_INTERVAL_SECONDS
    pump_interval_seconds: float = DEFAULT_PUMP_INTERVAL_SECONDS
    release_grace_seconds: float = DEFAULT_RELEASE_GRACE_SECONDS
    expire_grace_seconds: float = DEFAULT_EXPIRE_GRACE_SECONDS
    offline_startup_grace_seconds: float = DEFAULT_OFFLINE_STARTUP_GRACE_SECONDS
    liveness_grace_seconds: float = DEFAULT_LIVENESS_GRACE_SECONDS
    orphan_queue_seconds: float = DEFAULT_ORPHAN_QUEUE_SECONDS
    stream_revoke_delay_seconds: float = STREAM_DRAIN_WINDOW_S
    default_max_running_time_seconds: int = STREAM_FALLBACK_MAX_RUNNING_TIME_S

    def __post_init__(self) -> None:
        if self.scan_interval_seconds <= 0 or self.pump_interval_seconds <= 0:
            raise ValueError("scan and pump intervals must be positive")
        for name in (
            "release_grace_seconds",
            "expire_grace_seconds",
            "offline_startup_grace_seconds",
            "liveness_grace_seconds",
            "orphan_queue_seconds",
            "stream_revoke_delay_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.default_max_running_time_seconds < 1:
            raise ValueError("default_max_running_time_seconds must be at least 1")
