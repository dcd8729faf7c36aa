"""The ``blocks`` command: a local network and a terminal client for Blocks Network.

One module per command group: ``devnet`` (a local network), ``send``, ``watch``, ``tasks``,
``agents``, ``publish``. Each module's ``register(subparsers)`` adds its parser and sets a
``handler(args) -> exit code``. Exit codes: 0 done, 1 failed, 2 usage or configuration,
3 network unreachable (see :mod:`blocks_devnet.cli.common`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from blocks_devnet.cli import agents, devnet, publish, send, tasks, watch
from blocks_network._version import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``blocks`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="blocks",
        description="Blocks Network tools: a local network and a client for tasks and agents.",
        epilog=(
            "exit codes: 0 done, 1 failed (task failed/canceled/timed out, request refused), "
            "2 usage or configuration, 3 network unreachable"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (devnet, send, watch, tasks, agents, publish):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``blocks`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
