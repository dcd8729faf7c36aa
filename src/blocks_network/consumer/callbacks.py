"""Session callbacks: registration with replay, ordered delivery, error routing (§4.5).

One re-entrant lock serialises delivery and registration, so a callback registered late
first sees the replayed past, in order, and only then live events; a callback never sees
an event twice. A callback that raises goes to the ``on_error`` handlers with a
:class:`CallbackErrorContext`; with none registered it is logged at WARNING.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from blocks_network.consumer.events import CallbackErrorContext

__all__ = ["CALLBACK_KINDS", "CallbackRegistry", "ErrorHandler", "Unsubscribe"]

logger = logging.getLogger(__name__)

Unsubscribe = Callable[[], None]
ErrorHandler = Callable[[BaseException, CallbackErrorContext], None]

CALLBACK_KINDS = (
    "onEvent",
    "onProgress",
    "onArtifact",
    "onTerminal",
    "onSystem",
    "onCancelRequested",
    "onStream",
)


class CallbackRegistry:
    """Callbacks of one session; thread-safe.

    ``lock`` is exposed so the session can make "record the event" and "deliver it" one
    atomic step relative to registrations.
    """

    def __init__(self, entry_point: str, label: str) -> None:
        self.lock = threading.RLock()
        self._entry_point = entry_point
        self._label = label
        self._callbacks: dict[str, list[Callable[[Any], None]]] = {k: [] for k in CALLBACK_KINDS}
        self._error_handlers: list[ErrorHandler] = []

    def add(
        self, kind: str, callback: Callable[[Any], None], replay: Iterable[Any] = ()
    ) -> Unsubscribe:
        """Register ``callback`` for ``kind`` after delivering ``replay`` to it; returns an
        unsubscribe function (idempotent)."""
        if not callable(callback):
            raise TypeError(f"{kind} callback must be callable, got {type(callback).__name__}")
        with self.lock:
            for item in replay:
                self._invoke(kind, callback, item)
            self._callbacks[kind].append(callback)

        def unsubscribe() -> None:
            with self.lock:
                entries = self._callbacks[kind]
                if callback in entries:
                    entries.remove(callback)

        return unsubscribe

    def add_error_handler(self, handler: ErrorHandler) -> Unsubscribe:
        """Register an ``on_error(error, context)`` handler; returns its unsubscribe function."""
        if not callable(handler):
            raise TypeError(f"on_error handler must be callable, got {type(handler).__name__}")
        with self.lock:
            self._error_handlers.append(handler)

        def unsubscribe() -> None:
            with self.lock:
                if handler in self._error_handlers:
                    self._error_handlers.remove(handler)

        return unsubscribe

    def deliver(self, kind: str, item: Any) -> None:
        """Call every ``kind`` callback with ``item`` (call with :attr:`lock` held)."""
        for callback in list(self._callbacks[kind]):
            self._invoke(kind, callback, item)

    def _invoke(self, kind: str, callback: Callable[[Any], None], item: Any) -> None:
        try:
            callback(item)
        except Exception as exc:
            self._report(exc, kind, item)

    def _report(self, error: Exception, kind: str, item: Any) -> None:
        handlers = list(self._error_handlers)
        if not handlers:
            logger.warning(
                "%s callback of %s raised %s: %s (register session.on_error(...) to handle it)",
                kind,
                self._label,
                type(error).__name__,
                error,
                exc_info=error,
            )
            return
        context = CallbackErrorContext(self._entry_point, kind, item)
        for handler in handlers:
            try:
                handler(error, context)
            except Exception:
                logger.warning("on_error handler of %s raised", self._label, exc_info=True)
