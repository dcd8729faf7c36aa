"""The console scripts' entry points (``blocks``, ``blocks-run``, ``python -m``).

A Ctrl+C while Python is still importing a command (its first ~50 ms) prints one line and
exits 130 instead of a ``KeyboardInterrupt`` traceback: while the command's modules load, a
SIGINT handler writes the line and exits at once (a ``KeyboardInterrupt`` raised inside the
import machinery can be swallowed as "Exception ignored" or end the process by SIGINT after
it was caught). Then the command runs with Python's own handler, and a ``KeyboardInterrupt``
that escapes it becomes the same line. This module and the package ``__init__`` files above it
import next to nothing, so all this starts a few ms after the interpreter does (before that,
the interpreter's own start-up: docs/agent-runtime.md).
"""

from __future__ import annotations

import os

from blocks_network.cli.exit_codes import EXIT_INTERRUPTED


def blocks() -> int:
    """The ``blocks`` command (:func:`blocks_network.cli.blocks.main`)."""
    return _run("blocks_network.cli.blocks", prog="blocks")


def blocks_run() -> int:
    """The ``blocks-run`` command (:func:`blocks_network.cli.run_agent.main`)."""
    return _run("blocks_network.cli.run_agent", prog="blocks-run")


def _run(module: str, *, prog: str) -> int:
    try:
        import importlib
        import signal

        def exit_now(signum: int, frame: object) -> None:
            os._exit(_interrupted(prog))  # nothing is written or open yet: no flush is lost

        previous = signal.signal(signal.SIGINT, exit_now)
        try:
            command = importlib.import_module(module)
        finally:
            signal.signal(signal.SIGINT, previous)
        return int(command.main())
    except KeyboardInterrupt:
        return _interrupted(prog)


def _interrupted(prog: str) -> int:
    # os.write: the signal may land inside another write to sys.stderr (no reentrant print).
    os.write(2, f"{prog}: interrupted\n".encode())
    return EXIT_INTERRUPTED
