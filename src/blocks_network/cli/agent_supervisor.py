"""``blocks-run`` after start-up: serve until a signal, stop gracefully, reload on edits.

- First SIGINT/SIGTERM: stop taking tasks and drain. The drain says what it waits for
  ("stopping: waiting up to 3 s for 1 running task (t_1) — press Ctrl+C again to stop now")
  and what it does after the grace period; exit 0.
- A second signal: the drain ends at once, every running task's terminal is published as
  ``canceled`` (the consumer sees it), the instance leaves, exit 130.
- ``--reload``: a watched file changed → import the handler again; if that fails (a syntax
  error mid-edit) log it and keep the running instance until the next change; else drain
  the running instance and start a fresh one with the new handler.

Signal handlers only count signals; the main thread acts on the count between polls, so no
lock is ever taken inside a signal handler.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from blocks_network.agent.instance import AgentInstance
from blocks_network.agent.logging import install_agent_logging
from blocks_network.agent.shutdown import install_signal_handlers
from blocks_network.cli.exit_codes import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from blocks_network.cli.reload import FileWatcher, forget_modules
from blocks_network.errors import ConfigError, NetworkError
from blocks_network.types import AgentInstanceOptions

__all__ = ["AgentSupervisor", "LoadedAgent", "exit_code_for"]

logger = logging.getLogger(__name__)

#: How often the main thread looks at signals, the instance and the watched files.
POLL_S: Final = 0.25
#: After a second Ctrl+C, how long ending the running tasks may take before the process
#: exits anyway (the network is unreachable and their terminals cannot be published).
STOP_NOW_LIMIT_S: Final = 10.0
_AGAIN = "press Ctrl+C again to stop now"


@dataclass(frozen=True)
class LoadedAgent:
    """What ``blocks-run`` runs: the options, the name it shows, the files ``--reload`` watches."""

    options: AgentInstanceOptions
    shown: str
    watched: list[Path] = field(default_factory=list)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of a start-up error: configuration 2, network unreachable 3, else 1."""
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, NetworkError):
        return EXIT_UNREACHABLE
    return EXIT_FAILURE


class _SignalCount:
    """Counts SIGINT/SIGTERM while installed (main thread only)."""

    def __init__(self) -> None:
        self.count = 0
        self._restore: Callable[[], None] | None = None

    def __enter__(self) -> _SignalCount:
        def on_signal(signum: int) -> None:
            self.count += 1

        self._restore = install_signal_handlers(on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._restore is not None:
            self._restore()


class AgentSupervisor:
    """Starts the instance, serves until a signal or a fatal error, reloads on edits."""

    def __init__(
        self,
        loaded: LoadedAgent,
        *,
        cdm_url: str,
        reload: Callable[[], LoadedAgent] | None = None,
    ) -> None:
        self._loaded = loaded
        self._cdm_url = cdm_url
        self._reload = reload
        self._watcher = FileWatcher(loaded.watched) if reload is not None else None

    def run(self) -> int:
        """Run until stopped; returns the exit code. Must be called on the main thread."""
        instance = self._start(self._loaded, first=True)
        if isinstance(instance, int):
            return instance
        with _SignalCount() as signals:
            while True:
                if signals.count:
                    return self._stop(instance, signals)
                if instance.wait(POLL_S):
                    # Stopped without a signal: a fatal error (already logged).
                    return EXIT_FAILURE
                replacement = self._maybe_reload(instance, signals)
                if isinstance(replacement, int):
                    return replacement
                instance = replacement

    # --- start -------------------------------------------------------------------------------

    def _start(self, loaded: LoadedAgent, *, first: bool) -> AgentInstance | int:
        options = loaded.options
        if first:
            logger.info(
                'starting handler "%s" on agent name "%s"', loaded.shown, options.agent_name
            )
            logger.info(
                "concurrency: %s (expected instances: %s)",
                options.concurrency or "unlimited",
                options.expected_instances,
            )
            logger.info("network config: %s", self._cdm_url)
        instance = AgentInstance(options)
        try:
            handle = instance.start()
        except KeyboardInterrupt:
            logger.warning("interrupted while starting")
            return EXIT_INTERRUPTED
        except Exception as exc:
            debug = logger.isEnabledFor(logging.DEBUG)
            logger.error("%s", exc, exc_info=exc if debug else None)
            return exit_code_for(exc)
        cdm = handle["cdm_config"]
        if first and cdm is not None:
            logger.info("connected to %s", cdm.api_base_url)
        logger.info("instance ID: %s", handle["instance_id"])
        if self._watcher is not None:
            shown = ", ".join(str(p.name) for p in self._watcher.paths) or "nothing"
            logger.info("reloading when these files change: %s", shown)
        logger.info("running (press Ctrl+C to stop)")
        return instance

    # --- stop --------------------------------------------------------------------------------

    def _stop(self, instance: AgentInstance, signals: _SignalCount) -> int:
        if not instance.running_task_ids():
            logger.info("stopping")
        now = self._drain(instance, signals, hint=_AGAIN)
        logger.info("stopped")
        return EXIT_INTERRUPTED if now else EXIT_OK

    def _drain(self, instance: AgentInstance, signals: _SignalCount, *, hint: str) -> bool:
        """Stop ``instance`` on a thread while watching for one more signal; True if it
        came (the stop was cut short)."""
        seen = signals.count
        stopper = threading.Thread(
            target=instance.stop, kwargs={"hint": hint}, name="blocks-run-stop", daemon=True
        )
        stopper.start()
        cut_at: float | None = None
        while stopper.is_alive():
            stopper.join(POLL_S)
            if cut_at is None and signals.count > seen:
                cut_at = time.monotonic()
                instance.stop_now()
            if cut_at is not None and time.monotonic() - cut_at > STOP_NOW_LIMIT_S:
                logger.error(
                    "running tasks could not be ended within %s s (is the network reachable?); "
                    "exiting anyway",
                    f"{STOP_NOW_LIMIT_S:g}",
                )
                break
        return cut_at is not None

    # --- reload ------------------------------------------------------------------------------

    def _maybe_reload(self, instance: AgentInstance, signals: _SignalCount) -> AgentInstance | int:
        if self._watcher is None or self._reload is None:
            return instance
        changed = self._watcher.changed()
        if not changed:
            return instance
        logger.info("changed: %s; loading the handler again", ", ".join(p.name for p in changed))
        forget_modules({p.parent for p in self._watcher.paths if p.suffix == ".py"})
        try:
            loaded = self._reload()
        except ConfigError as exc:
            logger.error("%s — still running the previous handler; fix it and save again", exc)
            return instance
        self._watcher.watch(loaded.watched)
        install_agent_logging(os.environ, force=True, context={"agent": loaded.options.agent_name})
        logger.info("reloading: stopping the running instance first")
        if self._drain(instance, signals, hint="press Ctrl+C to stop now"):
            logger.info("stopped")
            return EXIT_INTERRUPTED
        if signals.count:
            logger.info("stopped")
            return EXIT_OK
        return self._start(loaded, first=False)
