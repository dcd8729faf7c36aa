"""``blocks-run``: run a handler as an agent instance until Ctrl+C (protocol §9.5).

- ``blocks-run --handler echo`` / ``--handler adder``: a handler from the packaged registry;
  ``--registry PATH`` reads another ``registry.json``.
- ``blocks-run`` in a folder holding ``agent-card.json``, or ``blocks-run --card PATH``: card
  mode (``runtime.handler``, ``runtime.handlerExport``, concurrency and scaling numbers from
  the card).
- ``blocks-run`` with neither: the built-in echo handler, announced by one stderr line (the
  reference's default, kept; the line says why so nobody mistakes it for their agent).

``./.env`` is loaded first. Every line goes through one logging setup (readable text, or
JSON with ``--log-format json``/``LOG_FORMAT=json``). Exit codes are those of ``blocks``
(:mod:`blocks_network.cli.exit_codes`): a bad option, card, registry or handler file is 2,
a network that cannot be reached at start is 3, a refusal by the network is 1. Running
and stopping (signals, ``--reload``) are in :mod:`blocks_network.cli.agent_supervisor`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

from blocks_network._version import __version__
from blocks_network.agent.logging import LOG_FORMATS, install_agent_logging, level_from_env
from blocks_network.cli.agent_supervisor import AgentSupervisor, LoadedAgent, exit_code_for
from blocks_network.cli.reload import handler_files
from blocks_network.config import read_env, resolve_cdm_url
from blocks_network.errors import ConfigError
from blocks_network.handlers.loader import (
    CARD_FILE_NAME,
    DEFAULT_HANDLER_NAME,
    default_registry_path,
    load_card_handler,
    load_registry_handler,
)
from blocks_network.types import AgentInstanceOptions

__all__ = ["main"]

# Not __name__: run as ``python -m`` that is "__main__", outside the blocks_network logger.
logger = logging.getLogger("blocks_network.cli.run_agent")

_LOG_LEVELS = ("error", "warn", "info", "debug")
_HANDLERS_DIR = default_registry_path().parent


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"must be a whole number ≥ 0 (0 = unlimited), got {text!r}"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blocks-run",
        description=(
            "Run an agent handler on the Blocks Network. With no flags in a folder holding "
            f"{CARD_FILE_NAME}, runs the card's runtime.handler. With no --handler and no "
            f"{CARD_FILE_NAME} in the current folder, runs the built-in echo handler and says "
            "so on stderr."
        ),
        epilog=(
            "exit codes: 0 stopped by Ctrl+C/SIGTERM, 1 failed (the network refused), "
            "2 usage or configuration, 3 network unreachable, 130 stopped at once by a "
            "second Ctrl+C"
        ),
    )
    parser.add_argument(
        "--handler", metavar="NAME", help="handler name in the registry (default: echo)"
    )
    parser.add_argument("--registry", metavar="PATH", help="registry.json to read handlers from")
    parser.add_argument(
        "--card",
        metavar="PATH",
        help=f"run the handler of this {CARD_FILE_NAME} (or of the one in this folder)",
    )
    parser.add_argument(
        "--concurrency",
        metavar="N",
        type=_non_negative,
        help="tasks run at once (0 = unlimited); overrides the card or registry",
    )
    parser.add_argument(
        "--log-level", choices=_LOG_LEVELS, help="log threshold (default: LOG_LEVEL or info)"
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text lines, or one JSON object per line (default: LOG_FORMAT or text)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help=(
            "for development: when the handler's files or the card change, let running tasks "
            "finish and start a fresh instance with the edited handler"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _card_path(args: argparse.Namespace) -> Path | None:
    if args.card is not None:
        path = Path(args.card)
        return path / CARD_FILE_NAME if path.is_dir() else path
    card_path = Path.cwd() / CARD_FILE_NAME
    if args.handler is None and args.registry is None and card_path.is_file():
        return card_path
    return None


def load_agent(args: argparse.Namespace, *, announce: bool = True) -> LoadedAgent:
    """Import the handler ``args`` name and build the instance options. Raises ConfigError
    (HandlerLoadError) naming the file and field."""
    card_path = _card_path(args)
    if card_path is not None:
        loaded = load_card_handler(card_path)
        options = AgentInstanceOptions(
            agent_name=loaded.agent_name,
            description=loaded.description,
            handler=loaded.handler,
            card=loaded.card,
            tags=loaded.tags,
            concurrency=loaded.concurrency,
            expected_instances=loaded.expected_instances,
            max_pending_backlog=loaded.max_pending_backlog,
            max_running_time_sec=loaded.max_running_time_sec,
        )
        shown, config_file = os.path.relpath(loaded.handler_file), card_path
    else:
        if args.handler is None and announce:
            source = (
                f"handler {DEFAULT_HANDLER_NAME!r} of {args.registry}"
                if args.registry
                else f"built-in {DEFAULT_HANDLER_NAME} handler"
            )
            logger.warning("no %s here and no --handler: running the %s", CARD_FILE_NAME, source)
        entry = load_registry_handler(
            args.handler or DEFAULT_HANDLER_NAME, args.registry, environ=os.environ
        )
        options = AgentInstanceOptions(
            agent_name=entry.agent_name,
            description=entry.description,
            handler=entry.handler,
            concurrency=entry.concurrency,
            expected_instances=entry.expected_instances,
        )
        shown = entry.name
        config_file = Path(args.registry) if args.registry else default_registry_path()
    if args.concurrency is not None:
        options = dataclasses.replace(options, concurrency=args.concurrency)
    watched = [config_file, *handler_files(options.handler, _HANDLERS_DIR)]
    return LoadedAgent(options=options, shown=shown, watched=watched)


def _fail(exc: BaseException) -> int:
    debug = level_from_env(os.environ) <= logging.DEBUG
    logger.error("%s", exc, exc_info=exc if debug else None)
    return exit_code_for(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``blocks-run``; returns the exit code (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.card is not None and (args.handler is not None or args.registry is not None):
        parser.error("--card runs a card's handler: leave out --handler and --registry")
    load_dotenv(Path.cwd() / ".env", override=False)
    # The flags win over the environment; the instance reads the same variables.
    if args.log_level:
        os.environ["LOG_LEVEL"] = args.log_level
    if args.log_format:
        os.environ["LOG_FORMAT"] = args.log_format
    install_agent_logging(os.environ, force=True)
    try:
        loaded = load_agent(args)
        cdm_url = resolve_cdm_url(None, read_env(os.environ))
    except ConfigError as exc:
        return _fail(exc)
    install_agent_logging(os.environ, force=True, context={"agent": loaded.options.agent_name})
    supervisor = AgentSupervisor(
        loaded,
        cdm_url=cdm_url,
        reload=(lambda: load_agent(args, announce=False)) if args.reload else None,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
