"""Run a blocking call on a daemon thread and collect what it raised."""

from __future__ import annotations

import threading
from collections.abc import Callable


def start_call(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``call`` on a daemon thread; the list receives the exception it raises."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors
