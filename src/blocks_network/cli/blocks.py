"""The ``blocks`` command: a terminal client for Blocks Network tasks and agents.

One module per command group: ``send``, ``watch``, ``tasks``, ``agents``, ``publish``. Each
module's ``register(subparsers)`` adds its parser and sets a ``handler(args) -> exit code``.
Other installed packages add command groups through the ``blocks_network.cli`` entry-point
group (the local network adds ``devnet``), so the SDK never imports them (docs/local-network.md).
Exit codes: 0 done, 1 failed, 2 usage or configuration, 3 network unreachable (see
:mod:`blocks_network.cli.common`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from blocks_network._version import __version__
from blocks_network.cli import agents, publish, send, tasks, watch

__all__ = ["PLUGIN_GROUP", "build_parser", "main"]

logger = logging.getLogger(__name__)

#: Entry points ``name = "module:register"``; ``register(subparsers)`` adds command ``name``.
PLUGIN_GROUP = "blocks_network.cli"


def _add_plugin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as exc:  # a broken optional package must not take `blocks` down
            logger.warning("blocks: command %r is unavailable: %s", entry.name, exc)
            continue
        register(commands)


def build_parser() -> argparse.ArgumentParser:
    """The ``blocks`` argument parser with every subcommand (installed plugins first)."""
    parser = argparse.ArgumentParser(
        prog="blocks",
        description="Blocks Network tools: a client for tasks and agents "
        "(and a local network when blocks_devnet is installed).",
        epilog=(
            "exit codes: 0 done, 1 failed (task failed/canceled/timed out, request refused), "
            "2 usage or configuration, 3 network unreachable"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_plugin_commands(commands)
    for module in (send, watch, tasks, agents, publish):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``blocks`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
