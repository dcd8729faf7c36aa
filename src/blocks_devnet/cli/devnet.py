"""``blocks devnet`` (run a local Blocks Network in the foreground) and
``blocks devnet keys create`` (add a user and print its API key).

The server modules are imported when the command runs, so the other ``blocks`` commands
start without loading them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from blocks_devnet.backend.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, DevnetConfig

if TYPE_CHECKING:
    from blocks_devnet.server_thread import ServerStartError

__all__ = ["ENV_DEVNET_PORT", "default_port", "register", "run_devnet", "run_keys_create"]

logger = logging.getLogger(__name__)

#: How long the ready probe waits for ``config.json`` to answer.
READY_PROBE_TIMEOUT_SECONDS = 10.0
#: How often the main thread wakes to run a signal handler whose signal another thread
#: took (after a stop, any thread may): such a signal does not interrupt an untimed wait.
SIGNAL_CHECK_SECONDS = 0.2
#: Overrides the default port (``0`` picks a free one), e.g. for running the README in CI.
ENV_DEVNET_PORT = "BLOCKS_DEVNET_PORT"


def default_port(environ: Mapping[str, str] | None = None) -> int:
    """``BLOCKS_DEVNET_PORT`` when set to a port number, else 4280."""
    raw = (os.environ if environ is None else environ).get(ENV_DEVNET_PORT, "").strip()
    if raw.isdigit() and int(raw) <= 65535:
        return int(raw)
    return DEFAULT_PORT


def _write_env_file(path: Path, env: dict[str, str]) -> None:
    """Write ``KEY=VALUE`` lines atomically: readers see no file or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key}={value}\n" for key, value in env.items())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _probe(url: str, ca_cert: Path | None) -> None:
    """Block until ``url`` answers 200 (the server really serves), or raise OSError.

    Straight to the server (a proxy in the environment is not asked), trusting ``ca_cert``.
    """
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ca_cert is not None:
        context = ssl.create_default_context(cafile=str(ca_cert))
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    with opener.open(url, timeout=READY_PROBE_TIMEOUT_SECONDS) as response:
        if response.status != 200:
            raise OSError(f"{url} answered HTTP {response.status}")


def _describe_start_error(exc: ServerStartError, config: DevnetConfig) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno in (98, 48, 10048):  # EADDRINUSE variants
        return (
            f"blocks devnet: port {config.port} on {config.host} is already in use; "
            "stop the other server or pass --port N"
        )
    return f"blocks devnet: could not start: {cause or exc}"


def run_devnet(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print (and optionally write) the env lines once ready."""
    from blocks_devnet.data_dir_lock import DataDirInUseError
    from blocks_devnet.network import LocalNetwork
    from blocks_devnet.server_thread import ServerStartError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = DevnetConfig(
            host=args.host,
            port=args.port,
            data_dir=Path(args.data_dir),
            long_poll_seconds=args.long_poll_seconds,
            tls=args.tls,
            retention_days=args.retention_days,
        )
    except ValueError as exc:
        print(f"blocks devnet: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    network = LocalNetwork(config)
    try:
        try:
            network.start()
        except DataDirInUseError as exc:
            print(f"blocks devnet: {exc}", file=sys.stderr)
            return 2  # a usage problem: the other network or another --data-dir
        except ServerStartError as exc:
            print(_describe_start_error(exc, config), file=sys.stderr)
            return 1
        except OSError as exc:  # the data dir cannot be created or locked
            print(f"blocks devnet: cannot use data dir {config.data_dir}: {exc}", file=sys.stderr)
            return 1
        try:
            _probe(network.cdm_url, network.ca_cert_file)
        except OSError as exc:
            print(
                f"blocks devnet: the server does not answer at {network.cdm_url}: {exc}",
                file=sys.stderr,
            )
            return 1
        env = network.env()
        # The file first: whoever reads the printed lines can rely on it existing.
        if args.env_file:
            try:
                _write_env_file(Path(args.env_file), env)
            except OSError as exc:
                print(f"blocks devnet: cannot write {args.env_file}: {exc}", file=sys.stderr)
                return 1
        for key, value in env.items():
            print(f"{key}={value}")
        # A comment, so the output stays safe to source as shell (docs/dashboard.md).
        print(f"# dashboard: {network.url}/")
        hint = f"(also in {args.env_file})" if args.env_file else "(or pass --env-file .env)"
        print(f"# export these lines in your shell {hint}; Ctrl+C stops the network", flush=True)
        while not stop.wait(SIGNAL_CHECK_SECONDS):
            pass
        return 0
    finally:
        network.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_keys_create(args: argparse.Namespace) -> int:
    """Add a user with its own organisation and API key; the key is the last stdout line."""
    from blocks_devnet.backend.app import DATABASE_FILE
    from blocks_devnet.backend.identity import IdentityStore
    from blocks_devnet.store.database import Database

    data_dir = Path(args.keys_data_dir or args.data_dir)
    path = data_dir / DATABASE_FILE
    if not path.exists():
        print(
            f"blocks devnet keys create: no local network data at {path}; start `blocks devnet` "
            "first or pass --data-dir",
            file=sys.stderr,
        )
        return 1
    # A second connection to the WAL database is safe while the server runs.
    db = Database(path)
    try:
        user_id, org_id, api_key = IdentityStore(db).create_user(args.user)
    except ValueError as exc:
        print(f"blocks devnet keys create: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"# user {args.user}: id {user_id}, organisation {org_id}")
    print(api_key)
    return 0


def register(commands: Any) -> None:
    """Add ``devnet`` (and ``devnet keys create``) to the ``blocks`` subcommands."""
    devnet: argparse.ArgumentParser = commands.add_parser(
        "devnet",
        help="run a local Blocks Network in the foreground",
        description="Serve config.json, the Blocks backend and the realtime API on one port.",
        usage=(
            "blocks devnet [--host H] [--port N] [--data-dir DIR] [--env-file PATH] [--tls]"
            " [--retention-days N]\n"
            "       blocks devnet keys create --user NAME [--data-dir DIR]"
        ),
    )
    devnet.add_argument(
        "--host", default=DEFAULT_HOST, help=f"bind address (default {DEFAULT_HOST})"
    )
    devnet.add_argument(
        "--port",
        type=int,
        default=default_port(),
        help=f"port (default {DEFAULT_PORT}, or ${ENV_DEVNET_PORT}; 0 picks one)",
    )
    devnet.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help=f"state directory (default {DEFAULT_DATA_DIR})",
    )
    devnet.add_argument(
        "--env-file",
        help="also write BLOCKS_CDM_URL/BLOCKS_API_KEY (and SSL_CERT_FILE) here once serving",
    )
    devnet.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate from a local CA kept in DIR/tls "
        "(clients set SSL_CERT_FILE to DIR/tls/ca.pem; needs the devnet-tls extra)",
    )
    devnet.add_argument(
        "--long-poll-seconds",
        type=float,
        default=DevnetConfig.long_poll_seconds,
        help="how long a subscribe is held open before answering empty (default %(default)s)",
    )
    devnet.add_argument(
        "--retention-days",
        type=float,
        default=DevnetConfig.retention_days,
        metavar="N",
        help="delete task history and finished task records older than N days;"
        " 0 keeps them forever (default %(default)s)",
    )
    devnet.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    devnet.set_defaults(handler=run_devnet)

    devnet_commands = devnet.add_subparsers(
        dest="devnet_command", metavar="SUBCOMMAND", prog="blocks devnet"
    )
    keys = devnet_commands.add_parser("keys", help="manage API keys of the local network")
    keys_commands = keys.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION", prog="blocks devnet keys"
    )
    create = keys_commands.add_parser(
        "create", help="add a user (own organisation) and print its API key"
    )
    create.add_argument("--user", required=True, help="name of the new user")
    create.add_argument(
        "--data-dir", dest="keys_data_dir", metavar="DIR", help="state directory of the network"
    )
    create.set_defaults(handler=run_keys_create)
