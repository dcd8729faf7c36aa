"""Structured log lines of an agent instance (protocol §9.8).

Each record becomes ``[AgentInstance] {"level": "info", "message": "...", "ts": <epoch ms>,
...fields}`` on one line; error and warn lines go to stderr, the rest to stdout. ``LOG_LEVEL``
(``error`` < ``warn`` < ``info`` < ``debug``, default ``info``) picks the threshold.

Library modules log through ``logging.getLogger(__name__)`` as usual and attach fields with
``extra=fields(taskId=...)``; :func:`install_agent_logging` adds the handler once, on the
``blocks_network`` logger, when an instance starts (unless the application configured
logging itself).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "LOG_PREFIX",
    "AgentLogFormatter",
    "AgentLogHandler",
    "fields",
    "install_agent_logging",
    "level_from_env",
]

LOG_PREFIX: Final = "[AgentInstance]"
_FIELDS_ATTR: Final = "blocks_fields"
_SDK_LOGGER: Final = "blocks_network"

_LEVELS: Final[Mapping[str, int]] = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
_NAMES: Final[Mapping[int, str]] = {
    logging.CRITICAL: "error",
    logging.ERROR: "error",
    logging.WARNING: "warn",
    logging.INFO: "info",
    logging.DEBUG: "debug",
}

_install_lock = threading.Lock()


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: ``logger.info("task %s started", tid, extra=fields(taskId=tid))``."""
    return {_FIELDS_ATTR: values}


def level_from_env(environ: Mapping[str, str]) -> int:
    """The ``logging`` level named by ``LOG_LEVEL`` (unknown or unset → INFO)."""
    name = environ.get("LOG_LEVEL", "").strip().lower()
    return _LEVELS.get(name, logging.INFO)


class AgentLogFormatter(logging.Formatter):
    """``[AgentInstance] {json}``; an exception adds ``error`` (``KeyError: 'txt'``) and, on an
    error record (or any record when ``include_traceback``: LOG_LEVEL=debug), its traceback."""

    def __init__(self, *, include_traceback: bool = False) -> None:
        super().__init__()
        self._include_traceback = include_traceback

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "level": _NAMES.get(record.levelno, "info"),
            "message": record.getMessage(),
            "ts": int(record.created * 1000),
        }
        extra = getattr(record, _FIELDS_ATTR, None)
        if isinstance(extra, Mapping):
            for key, value in extra.items():
                body.setdefault(str(key), value)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = str(exc)
            body.setdefault(
                "error", f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            )
            if self._include_traceback or record.levelno >= logging.ERROR:
                body["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return f"{LOG_PREFIX} {json.dumps(body, default=str, ensure_ascii=False)}"


class AgentLogHandler(logging.Handler):
    """Writes formatted lines to the *current* ``sys.stderr`` (warn and above) or ``sys.stdout``.

    Looking the stream up at each emit keeps output correct when a test harness or a CLI
    swaps ``sys.stdout`` after the handler was installed.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(line + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def install_agent_logging(environ: Mapping[str, str], *, force: bool = False) -> bool:
    """Install the structured handler on the ``blocks_network`` logger; True if it is in place.

    An application that configured logging itself (a handler on the root logger or on
    ``blocks_network``) keeps its setup and nothing is added, unless ``force`` (the CLI).
    The level comes from ``LOG_LEVEL`` on every call, so a later instance may change it.
    Idempotent and thread-safe.
    """
    logger = logging.getLogger(_SDK_LOGGER)
    level = level_from_env(environ)
    with _install_lock:
        ours = [h for h in logger.handlers if isinstance(h, AgentLogHandler)]
        if not ours:
            if not force and (logger.handlers or logging.getLogger().handlers):
                return False
            handler = AgentLogHandler()
            logger.addHandler(handler)
            ours = [handler]
        for handler in ours:
            handler.setFormatter(AgentLogFormatter(include_traceback=level <= logging.DEBUG))
        logger.setLevel(level)
    return True
