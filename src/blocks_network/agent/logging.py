"""Log lines of an agent instance and of ``blocks-run``: readable text, or JSON when asked.

Two formats, one setup (:func:`install_agent_logging`):

- ``text`` (the default): ``18:04:05.123 INFO  task t_1 started  taskId=t_1``, for a person
  at a terminal; an error record is followed by its traceback.
- ``json`` (``LOG_FORMAT=json`` or ``blocks-run --log-format json``): one JSON object per line,
  ``{"time": "2026-12-07T18:04:05.123Z", "ts": <epoch ms>, "level": "info", "logger": ...,
  "message": ..., "agent": ..., "taskId": ...}``, for a log collector.

Error and warning lines go to stderr, the rest to stdout. Credentials (``auth=``/``token=``
query parameters, bearer keys) are replaced by ``[redacted]`` in every line. ``LOG_LEVEL`` (``error`` < ``warn``
< ``info`` < ``debug``, default ``info``) picks the threshold. Library modules log through
``logging.getLogger(__name__)`` and attach fields with ``extra=fields(taskId=...)``; the
handler is added to the ``blocks_network`` logger when an instance starts (unless the
application configured logging itself). Deviation from protocol §9.8 (the reference's
``[AgentInstance] {json}`` lines mixed with plain ``[agent]`` lines): see
docs/agent-runtime.md, "Logging".
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = [
    "ENV_LOG_FORMAT",
    "LOG_FORMATS",
    "REDACTED",
    "AgentLogFormatter",
    "AgentLogHandler",
    "LogFormat",
    "TextLogFormatter",
    "fields",
    "format_from_env",
    "install_agent_logging",
    "level_from_env",
    "redact",
]

ENV_LOG_FORMAT: Final = "LOG_FORMAT"
LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
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

#: Credentials a line might carry in a URL or header (a DEBUG line of a failed request):
#: PubNub's ``auth``/``token``/``signature`` query parameters, a bearer API key.
_SECRETS: Final = re.compile(
    r"(?P<key>\b(?:auth|token|signature|api_key|apiKey)=)[^&\s\"']+|(?P<bearer>Bearer )[^\s\"']+"
)
REDACTED: Final = "[redacted]"


def redact(text: str) -> str:
    """``text`` with credentials replaced by ``[redacted]`` (every log line goes through it)."""
    return _SECRETS.sub(lambda m: f"{m.group('key') or m.group('bearer')}{REDACTED}", text)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: ``logger.info("task %s started", tid, extra=fields(taskId=tid))``."""
    return {_FIELDS_ATTR: values}


def level_from_env(environ: Mapping[str, str]) -> int:
    """The ``logging`` level named by ``LOG_LEVEL`` (unknown or unset → INFO)."""
    name = environ.get("LOG_LEVEL", "").strip().lower()
    return _LEVELS.get(name, logging.INFO)


def format_from_env(environ: Mapping[str, str]) -> LogFormat:
    """``json`` when ``LOG_FORMAT=json``, else ``text``."""
    return "json" if environ.get(ENV_LOG_FORMAT, "").strip().lower() == "json" else "text"


def _record_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    extra = getattr(record, _FIELDS_ATTR, None)
    return extra if isinstance(extra, Mapping) else {}


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _BaseFormatter(logging.Formatter):
    def __init__(
        self, *, include_traceback: bool = False, context: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self._include_traceback = include_traceback
        #: Fields every line carries (``agent``), after the record's own.
        self.context: dict[str, Any] = dict(context or {})

    def _traceback(self, record: logging.LogRecord) -> str | None:
        """The traceback on an error record (or any record with ``include_traceback``)."""
        if not record.exc_info or record.exc_info[1] is None:
            return None
        if self._include_traceback or record.levelno >= logging.ERROR:
            return "".join(traceback.format_exception(*record.exc_info))
        return None


class AgentLogFormatter(_BaseFormatter):
    """One JSON object per line: ``time``, ``ts``, ``level``, ``logger``, ``message``, the
    record's fields and the context (``agent``); an exception adds ``error``
    (``KeyError: 'txt'``) and, on an error record (or with ``include_traceback``:
    LOG_LEVEL=debug), ``traceback``."""

    def format(self, record: logging.LogRecord) -> str:
        millis = int(record.created * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        body: dict[str, Any] = {
            "time": f"{stamp}.{millis % 1000:03d}Z",
            "ts": millis,
            "level": _NAMES.get(record.levelno, "info"),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for source in (_record_fields(record), self.context):
            for key, value in source.items():
                body.setdefault(str(key), value)
        if record.exc_info and record.exc_info[1] is not None:
            body.setdefault("error", _error_text(record.exc_info[1]))
            trace = self._traceback(record)
            if trace is not None:
                body["traceback"] = trace
        return redact(json.dumps(body, default=str, ensure_ascii=False))


class TextLogFormatter(_BaseFormatter):
    """``HH:MM:SS.mmm LEVEL message  key=value ...`` (local time); the record's fields whose
    value the message does not already show; an exception's type and text, and on an error
    record (or with ``include_traceback``) its traceback on the following lines."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        millis = int(record.created * 1000) % 1000
        level = logging.getLevelName(record.levelno)
        level = "WARN" if level == "WARNING" else level
        message = record.getMessage()
        extras = [
            f"{key}={value}"
            for key, value in _record_fields(record).items()
            if value is not None and str(value) not in message
        ]
        line = f"{clock}.{millis:03d} {level:<5} {message}"
        if extras:
            line = f"{line}  {' '.join(extras)}"
        if record.exc_info and record.exc_info[1] is not None:
            trace = self._traceback(record)
            error = _error_text(record.exc_info[1])
            if trace is not None:
                line = f"{line}\n{trace.rstrip()}"
            elif error not in message:
                line = f"{line} ({error})"
        return redact(line)


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


def install_agent_logging(
    environ: Mapping[str, str],
    *,
    force: bool = False,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Install the handler on the ``blocks_network`` logger; True if it is in place.

    An application that configured logging itself (a handler on the root logger or on
    ``blocks_network``) keeps its setup and nothing is added, unless ``force`` (the CLI).
    Level (``LOG_LEVEL``) and format (``LOG_FORMAT``) come from ``environ`` on every call,
    so a later instance may change them; ``context`` (e.g. ``{"agent": name}``) replaces
    the fields every JSON line carries, when given. Idempotent and thread-safe.
    """
    logger = logging.getLogger(_SDK_LOGGER)
    level = level_from_env(environ)
    chosen = AgentLogFormatter if format_from_env(environ) == "json" else TextLogFormatter
    with _install_lock:
        ours = [h for h in logger.handlers if isinstance(h, AgentLogHandler)]
        if not ours:
            if not force and (logger.handlers or logging.getLogger().handlers):
                return False
            handler = AgentLogHandler()
            logger.addHandler(handler)
            ours = [handler]
        for handler in ours:
            previous = handler.formatter
            kept = previous.context if isinstance(previous, _BaseFormatter) else {}
            handler.setFormatter(
                chosen(
                    include_traceback=level <= logging.DEBUG,
                    context=kept if context is None else context,
                )
            )
        logger.setLevel(level)
    return True
