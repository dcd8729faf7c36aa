"""``blocks-run``: run a handler as an agent instance until Ctrl+C (protocol §9.5).

- ``blocks-run --handler echo`` / ``--handler adder``: a handler from the packaged registry;
  ``--registry PATH`` reads another ``registry.json``.
- ``blocks-run`` in a folder holding ``agent-card.json``: card mode (``runtime.handler``,
  ``runtime.handlerExport``, concurrency and scaling numbers from the card).
- ``blocks-run`` with neither: the built-in echo handler, announced by one stderr line (the
  reference's default, kept; the line says why so nobody mistakes it for their agent).

``./.env`` is loaded first. A bad registry, card or handler file prints one line naming the
file and field and exits 1 (the traceback only with ``LOG_LEVEL=debug``). SIGINT/SIGTERM stop
the instance gracefully and exit 0; a second signal exits at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

from blocks_network._version import __version__
from blocks_network.agent.instance import AgentInstance
from blocks_network.agent.logging import install_agent_logging
from blocks_network.agent.shutdown import install_signal_handlers
from blocks_network.config import read_env, resolve_cdm_url
from blocks_network.errors import BlocksError, ConfigError
from blocks_network.handlers.loader import (
    CARD_FILE_NAME,
    DEFAULT_HANDLER_NAME,
    load_card_handler,
    load_registry_handler,
)
from blocks_network.types import AgentInstanceOptions

__all__ = ["main"]

_PREFIX = "[agent]"
_EXIT_SECOND_SIGNAL = 130
_POLL_S = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blocks-run",
        description=(
            "Run an agent handler on the Blocks Network. With no flags in a folder holding "
            f"{CARD_FILE_NAME}, runs the card's runtime.handler. With no --handler and no "
            f"{CARD_FILE_NAME} in the current folder, runs the built-in echo handler and says "
            "so on stderr."
        ),
    )
    parser.add_argument(
        "--handler", metavar="NAME", help="handler name in the registry (default: echo)"
    )
    parser.add_argument("--registry", metavar="PATH", help="registry.json to read handlers from")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _debug() -> bool:
    return os.environ.get("LOG_LEVEL", "").strip().lower() == "debug"


def _fail(exc: BaseException) -> int:
    print(f"error: {exc}", file=sys.stderr)
    if _debug():
        traceback.print_exception(exc)
    return 1


def _options(args: argparse.Namespace) -> tuple[AgentInstanceOptions, str]:
    card_path = Path.cwd() / CARD_FILE_NAME
    if args.handler is None and args.registry is None and card_path.is_file():
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
        return options, os.path.relpath(loaded.handler_file)
    if args.handler is None:
        source = (
            f"handler {DEFAULT_HANDLER_NAME!r} of {args.registry}"
            if args.registry
            else (f"built-in {DEFAULT_HANDLER_NAME} handler")
        )
        print(
            f"{_PREFIX} no {CARD_FILE_NAME} here and no --handler: running the {source}",
            file=sys.stderr,
            flush=True,
        )
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
    return options, entry.name


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``blocks-run``; returns the exit code (0 after Ctrl+C, 1 on a start-up error)."""
    args = _parser().parse_args(argv)
    load_dotenv(Path.cwd() / ".env", override=False)
    install_agent_logging(os.environ, force=True)
    try:
        options, shown = _options(args)
        cdm_url = resolve_cdm_url(None, read_env(os.environ))
    except ConfigError as exc:
        return _fail(exc)
    print(f'{_PREFIX} starting handler "{shown}" on agent name "{options.agent_name}"', flush=True)
    concurrency = options.concurrency or "unlimited"
    print(
        f"{_PREFIX} concurrency: {concurrency} (expected instances: {options.expected_instances})",
        flush=True,
    )
    print(f"{_PREFIX} network config: {cdm_url}", flush=True)
    instance = AgentInstance(options)
    try:
        handle = instance.start()
    except BlocksError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return 0
    cdm = handle["cdm_config"]
    if cdm is not None:
        print(f"{_PREFIX} connected to {cdm.api_base_url}", flush=True)
    print(f"{_PREFIX} instance ID: {handle['instance_id']}", flush=True)
    print(f"{_PREFIX} running (press Ctrl+C to stop)", flush=True)
    return _serve(instance)


def _serve(instance: AgentInstance) -> int:
    requested = threading.Event()

    def on_signal(signum: int) -> None:
        if requested.is_set():
            print(f"{_PREFIX} stopping now", file=sys.stderr, flush=True)
            os._exit(_EXIT_SECOND_SIGNAL)
        requested.set()

    restore = install_signal_handlers(on_signal)
    try:
        while not requested.wait(_POLL_S):
            if instance.wait(0):
                # Stopped without a signal: a fatal error (already logged).
                return 1
        print(f"{_PREFIX} stopping (finishing running tasks; Ctrl+C again to quit now)", flush=True)
        instance.stop()
        print(f"{_PREFIX} stopped", flush=True)
        return 0
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
