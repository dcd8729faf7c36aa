"""What every ``blocks`` command shares: exit codes, credentials, errors, small formatters.

Exit codes (docs/getting-started.md):

- 0: done (for ``send``/``watch``: the task completed)
- 1: the operation failed (task failed, canceled or timed out; the backend refused)
- 2: usage or configuration (bad arguments, missing ``BLOCKS_API_KEY``, unusable file)
- 3: the network is unreachable (nothing answers at ``BLOCKS_CDM_URL`` or the backend)

Credentials come from ``BLOCKS_CDM_URL`` and ``BLOCKS_API_KEY``, read from the environment
and, for variables it does not set, from ``./.env``.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv import dotenv_values

from blocks_network.cli.exit_codes import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from blocks_network.errors import (
    ApiKeyInvalidError,
    BillingModeMismatchError,
    BlocksError,
    ConfigError,
    NetworkError,
)
from blocks_network.protocol.constants import ENV_API_KEY, ENV_CDM_URL

if TYPE_CHECKING:
    from blocks_network.consumer.registry_client import RegistryClient
    from blocks_network.consumer.task_client import TaskClient

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "add_billing_mode",
    "add_json",
    "guarded",
    "human_size",
    "json_default",
    "load_environ",
    "open_client",
    "registry_client",
    "require_api_key",
]


_DEVNET_HINT = (
    "start a local network with `blocks devnet` and export the two lines it prints "
    "(or put them in ./.env)"
)


_API_KEY_INVALID = (
    f"{ENV_API_KEY} is invalid or revoked: use the key `blocks devnet` prints (export its two "
    "lines or put them in ./.env), or create one with `blocks devnet keys create --user NAME`"
)


class CliError(Exception):
    """A failure to report as one line on stderr with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_environ(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """The environment with ``./.env`` filled in underneath (set variables win)."""
    source = dict(os.environ if environ is None else environ)
    env_file = (cwd or Path.cwd()) / ".env"
    if env_file.is_file():
        for key, value in dotenv_values(env_file).items():
            if value is not None and not source.get(key):
                source[key] = value
    return source


def require_api_key(env: Mapping[str, str]) -> str:
    """``BLOCKS_API_KEY`` or a CliError (exit 2) that says where to get one."""
    key = env.get(ENV_API_KEY, "").strip()
    if not key:
        raise CliError(f"{ENV_API_KEY} is not set: {_DEVNET_HINT}", EXIT_USAGE)
    return key


def open_client(billing_mode: str, env: Mapping[str, str]) -> TaskClient:
    """A consumer ``TaskClient`` from ``env`` (blocking: CDM fetch and first token)."""
    from blocks_network.consumer.task_client import TaskClient

    api_key = require_api_key(env)
    return TaskClient.create(billing_mode, api_key=api_key, environ=env)


def human_size(size: int | float) -> str:
    """``512 B``, ``1.5 KB``, ``2.0 MB`` (powers of 1024, one decimal)."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def add_billing_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--billing-mode",
        choices=("free", "paid"),
        default="free",
        help="keyset to use; must match the agent's billing mode (default: free)",
    )


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def _unreachable_hint(env: Mapping[str, str]) -> str | None:
    if env.get(ENV_CDM_URL, "").strip():
        return None  # the SDK's message already names the URL and what to check
    return f"{ENV_CDM_URL} is not set, so the hosted network was tried; for a local one, " + (
        _DEVNET_HINT
    )


def guarded(
    prog: str, run: Callable[[argparse.Namespace, dict[str, str]], int]
) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: load the environment, turn errors into one line and an exit code."""

    def handler(args: argparse.Namespace) -> int:
        env = load_environ()
        try:
            return run(args, env)
        except CliError as exc:
            _error(prog, str(exc))
            return exc.exit_code
        except NetworkError as exc:
            hint = _unreachable_hint(env)
            _error(prog, f"{exc}\n{prog}: {hint}" if hint else str(exc))
            return EXIT_UNREACHABLE
        except ConfigError as exc:
            _error(prog, str(exc))
            return EXIT_USAGE
        except ApiKeyInvalidError:
            _error(prog, _API_KEY_INVALID)  # the SDK's text speaks of keys in code, not here
            return EXIT_FAILURE
        except BillingModeMismatchError as exc:
            _error(prog, _billing_mismatch(exc))
            return EXIT_FAILURE
        except BlocksError as exc:
            _error(prog, str(exc))
            return EXIT_FAILURE
        except KeyboardInterrupt:
            _error(prog, "interrupted")
            return EXIT_INTERRUPTED

    return handler


def _billing_mismatch(exc: BillingModeMismatchError) -> str:
    """The mismatch in CLI words: the flag to pass, not the TaskClient argument."""
    if exc.expected is None:
        return str(exc)
    used = f" but this command used {exc.got!r}" if exc.got else ""
    return (
        f"the agent is registered with billing mode {exc.expected!r}{used}: "
        f"pass --billing-mode {exc.expected}"
    )


def _error(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr, flush=True)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for bytes (as text when UTF-8, else base64 marker)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"$binary": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def registry_client(env: Mapping[str, str], *, need_key: bool) -> RegistryClient:
    """A :class:`~blocks_network.consumer.registry_client.RegistryClient` for the network of ``env``.

    The backend URL is ``BLOCKS_BACKEND_URL`` or the CDM document's ``api.baseUrl``
    (fetched, blocking). ``need_key`` makes ``BLOCKS_API_KEY`` mandatory (writes).
    """
    from blocks_network.config import load_cdm_config, read_env, resolve_cdm_url
    from blocks_network.consumer.registry_client import RegistryClient
    from blocks_network.transport.http_client import HttpClient

    settings = read_env(env)
    api_key = require_api_key(env) if need_key else settings.api_key
    base_url = settings.backend_url
    if not base_url:
        http = HttpClient()
        try:
            base_url = load_cdm_config(resolve_cdm_url(None, settings), http).api_base_url
        finally:
            http.close()
    if not base_url:
        raise CliError("the network's config document has no api.baseUrl", EXIT_USAGE)
    return RegistryClient.with_api_key(base_url, api_key)
