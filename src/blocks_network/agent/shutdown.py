"""Graceful shutdown: drain in-flight tasks, then make sure every task has a terminal.

Order (issue 4, "Graceful shutdown"): stop taking tasks → let in-flight handlers finish
within the grace period (``AGENT_SHUTDOWN_GRACE_SEC``, default 3 s) → ask the rest to stop
(cancel event) and give them a short moment → publish ``canceled`` for whatever is still
open → the caller then leaves presence. The reference runtime dropped in-flight tasks on
Ctrl+C; here each consumer still gets a terminal.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Final

from blocks_network.agent.task_runner import TaskRunner
from blocks_network.protocol.constants import (
    DEFAULT_AGENT_SHUTDOWN_GRACE_S,
    ENV_AGENT_SHUTDOWN_GRACE_SEC,
)

__all__ = ["DrainReport", "drain", "grace_from_env", "install_signal_handlers"]

logger = logging.getLogger(__name__)

#: After the grace period, how long cancelled handlers get to return on their own.
CANCEL_WAIT_S: Final = 1.0


def grace_from_env(environ: Mapping[str, str]) -> float:
    """``AGENT_SHUTDOWN_GRACE_SEC`` as seconds ≥ 0 (unset or invalid → the 3 s default)."""
    raw = environ.get(ENV_AGENT_SHUTDOWN_GRACE_SEC, "").strip()
    if not raw:
        return DEFAULT_AGENT_SHUTDOWN_GRACE_S
    try:
        value = float(raw)
    except ValueError:
        logger.warning(
            "%s=%r is not a number of seconds; using %s",
            ENV_AGENT_SHUTDOWN_GRACE_SEC,
            raw,
            DEFAULT_AGENT_SHUTDOWN_GRACE_S,
        )
        return DEFAULT_AGENT_SHUTDOWN_GRACE_S
    return max(0.0, value)


@dataclass(frozen=True)
class DrainReport:
    """How a drain went: tasks that finished on their own, were cancelled, were forced."""

    finished_in_grace: bool
    cancelled: int
    forced: int


def drain(
    runner: TaskRunner, grace_s: float, *, cancel_wait_s: float = CANCEL_WAIT_S
) -> DrainReport:
    """Wait for handlers, then cancel and force-end the rest. Blocks at most
    ``grace_s + cancel_wait_s``. The caller has already stopped accepting tasks."""
    in_flight = runner.active_count
    if in_flight:
        logger.info("waiting up to %.1f s for %d running task(s)", grace_s, in_flight)
    finished = runner.wait_idle(grace_s)
    cancelled = 0
    if not finished:
        cancelled = len(runner.cancel_all())
        if cancelled:
            logger.warning("cancelling %d task(s) still running after the grace period", cancelled)
        else:
            logger.warning("task events still wait for the network after the grace period")
        runner.wait_idle(cancel_wait_s)
    forced = runner.force_end_all()
    if forced:
        logger.warning("ended %d task(s) as canceled on shutdown", forced)
    return DrainReport(finished_in_grace=finished, cancelled=cancelled, forced=forced)


_Handler = Callable[[int, FrameType | None], object] | int | None


def install_signal_handlers(on_signal: Callable[[int], None]) -> Callable[[], None]:
    """Route SIGINT and SIGTERM to ``on_signal(signum)``; returns a function that restores
    the previous handlers. Must be called on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signal handlers can only be installed from the main thread")
    previous: dict[int, _Handler] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    return restore
