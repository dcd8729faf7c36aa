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
import time
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
#: How often a drain looks whether it was asked to stop at once (a second Ctrl+C).
_NOW_POLL_S: Final = 0.1


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
    runner: TaskRunner,
    grace_s: float,
    *,
    cancel_wait_s: float = CANCEL_WAIT_S,
    now: threading.Event | None = None,
    hint: str = "",
) -> DrainReport:
    """Wait for handlers, then cancel and force-end the rest. Blocks at most
    ``grace_s + cancel_wait_s``; at once once ``now`` is set (every open task then ends
    ``canceled``). The caller has already stopped accepting tasks. ``hint`` is appended to
    the line announcing the wait (``blocks-run``: how to stop at once)."""
    running = runner.in_flight()
    if running:
        logger.info(
            "stopping: waiting up to %s s for %s (%s)%s",
            f"{grace_s:g}",
            _tasks(len(running)),
            ", ".join(running),
            f" — {hint}" if hint else "",
        )
    finished = _wait_idle(runner, grace_s, now)
    cancelled = 0
    if not finished and not _is_set(now):
        cancelled = len(runner.cancel_all())
        if cancelled:
            logger.warning(
                "%s still running after %s s: cancelled, waiting up to %s s for %s to return",
                _tasks(cancelled),
                f"{grace_s:g}",
                f"{cancel_wait_s:g}",
                "it" if cancelled == 1 else "them",
            )
        else:
            logger.warning("task events still wait for the network after the grace period")
        _wait_idle(runner, cancel_wait_s, now)
    if _is_set(now):
        runner.cancel_all()
    forced = runner.force_end_all()
    if forced:
        # Running ones and pipes whose handler returned: "open", not "running".
        logger.warning("ended %s as canceled on shutdown", _tasks(forced, "open"))
    return DrainReport(finished_in_grace=finished, cancelled=cancelled, forced=forced)


def _tasks(count: int, kind: str = "running") -> str:
    return f"{count} {kind} task" if count == 1 else f"{count} {kind} tasks"


def _is_set(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()


def _wait_idle(runner: TaskRunner, timeout: float, now: threading.Event | None) -> bool:
    """``runner.wait_idle(timeout)``, cut short (False) when ``now`` is set."""
    if now is None:
        return runner.wait_idle(timeout)
    deadline = time.monotonic() + timeout
    while not now.is_set():
        remaining = deadline - time.monotonic()
        if runner.wait_idle(min(max(0.0, remaining), _NOW_POLL_S)):
            return True
        if remaining <= 0:
            return False
    return False


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
