"""A whole local Blocks Network in the current process: ``with LocalNetwork(config) as net``.

One aiohttp application on one port serves ``config.json``, the backend API and the
realtime API from a background thread (:class:`~blocks_devnet.server_thread.ServerThread`),
over HTTPS with ``tls=True`` (certificate from :mod:`blocks_devnet.local_ca`).
``blocks devnet`` runs the same object in the foreground; tests start one on port 0.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar, cast

from aiohttp import web

from blocks_devnet.backend.app import (
    build_context,
    create_devnet_app,
    devnet_fast_routes,
    open_database,
)
from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.backend.context import BackendContext
from blocks_devnet.backend.identity import DevIdentity
from blocks_devnet.data_dir_lock import DataDirLock
from blocks_devnet.local_ca import TLS_DIR, TlsFiles, ensure_tls_files
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.server_thread import ServerThread
from blocks_devnet.store.database import Database
from blocks_network.protocol.constants import ENV_API_KEY, ENV_CDM_URL
from blocks_network.transport.tls import ENV_SSL_CERT_FILE

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Hosts that mean "every interface": clients reach those on loopback.
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class NetworkNotRunningError(RuntimeError):
    """The network was used before ``start()`` or after ``stop()``."""


class LocalNetwork:
    """A local Blocks Network serving ``config`` until :meth:`stop` (a context manager).

    ``start()`` first locks the data dir (:mod:`blocks_devnet.data_dir_lock`; raises
    :class:`~blocks_devnet.data_dir_lock.DataDirInUseError` if another network holds it,
    before anything opens its database), then blocks until the port accepts connections and
    raises :class:`~blocks_devnet.server_thread.ServerStartError` if it cannot (port taken,
    unusable data dir). ``stop()`` releases held long polls, joins the server thread, closes
    the database and unlocks; calling it twice is safe. A network is started at most once.
    """

    def __init__(self, config: DevnetConfig | None = None) -> None:
        self.config = config or DevnetConfig()
        self._db: Database | None = None
        self._ctx: BackendContext | None = None
        self._dev: DevIdentity | None = None
        self._tls_files: TlsFiles | None = None
        self._tls_tmp: Path | None = None
        data_dir = self.config.data_dir
        self._lock = DataDirLock(data_dir) if data_dir is not None else None
        self._thread = ServerThread(
            self._create_app,
            host=self.config.host,
            port=self.config.port,
            on_shutdown=self._release_long_polls,
            name="blocks-devnet-server",
            fast_routes=devnet_fast_routes() if self.config.fast_path else (),
            tls=self._server_ssl_context if self.config.tls else None,
            timeouts=self.config.connection_timeouts,
        )
        self._running = False

    # --- lifecycle ------------------------------------------------------------------------

    def _create_app(self) -> web.Application:
        # Runs on the server thread, so the database is created where it is used.
        self._db = open_database(self.config)
        ctx = build_context(self.config, self._db)
        self._dev = ctx.identity.ensure_dev_identity()
        self._ctx = ctx
        return create_devnet_app(ctx)

    def _server_ssl_context(self) -> ssl.SSLContext:
        # Runs on the server thread at start: failures are reported by start().
        if self.config.data_dir is not None:
            directory = self.config.data_dir / TLS_DIR
        else:
            self._tls_tmp = Path(tempfile.mkdtemp(prefix="blocks-devnet-tls-"))
            directory = self._tls_tmp
        self._tls_files = ensure_tls_files(directory, [self.config.host])
        return self._tls_files.server_context()

    async def _release_long_polls(self) -> None:
        if self._ctx is not None:
            await self._ctx.realtime.stop()

    def start(self) -> LocalNetwork:
        """Start serving; returns self once the port accepts connections."""
        if self._lock is not None:
            self._lock.acquire()
        try:
            self._thread.start()
        except BaseException:
            self._close_db()
            raise
        self._running = True
        self.context.base_url = self.url
        logger.info(
            "local Blocks Network serving on %s (data: %s)",
            self.url,
            self.config.data_dir or "memory",
        )
        return self

    def stop(self) -> None:
        """Stop serving and close the database; safe to call twice."""
        self._running = False
        self._thread.stop()
        self._close_db()

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._tls_tmp is not None:
            shutil.rmtree(self._tls_tmp, ignore_errors=True)
        if self._lock is not None:
            self._lock.release()  # last: the database is closed

    def __enter__(self) -> LocalNetwork:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- where and who --------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._thread.port

    @property
    def origin(self) -> str:
        """``HOST:PORT`` clients use (a wildcard bind address is reached on loopback)."""
        host = self.config.host
        if host in _WILDCARD_HOSTS:
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL of the backend and realtime API (``http(s)://HOST:PORT``)."""
        return f"{'https' if self.config.tls else 'http'}://{self.origin}"

    @property
    def ca_cert_file(self) -> Path | None:
        """The CA certificate clients must trust (``SSL_CERT_FILE``); None without TLS."""
        if self._tls_files is None:
            return None
        return self._tls_files.ca_cert.resolve()

    @property
    def cdm_url(self) -> str:
        """What ``BLOCKS_CDM_URL`` should be set to."""
        return f"{self.url}/config.json"

    @property
    def context(self) -> BackendContext:
        """The backend context (touch it only through :meth:`call`, on the server loop)."""
        if self._ctx is None or not self._running:
            raise NetworkNotRunningError("the local network is not running: call start() first")
        return self._ctx

    @property
    def dev_identity(self) -> DevIdentity:
        if self._dev is None:
            raise NetworkNotRunningError("the local network is not running: call start() first")
        return self._dev

    @property
    def api_key(self) -> str:
        """The development API key (the same on every start with the same data dir)."""
        return self.dev_identity.api_key

    @property
    def keysets(self) -> dict[str, Keyset]:
        """Keysets by environment: ``playground`` and ``network``."""
        return dict(self.context.keysets)

    def env(self) -> dict[str, str]:
        """The environment a client of this network needs: ``BLOCKS_CDM_URL``,
        ``BLOCKS_API_KEY`` and, over TLS, ``SSL_CERT_FILE``."""
        env = {ENV_CDM_URL: self.cdm_url, ENV_API_KEY: self.api_key}
        if self.ca_cert_file is not None:
            env[ENV_SSL_CERT_FILE] = str(self.ca_cert_file)
        return env

    def call(self, fn: Callable[[], _T], timeout: float = 10.0) -> _T:
        """Run ``fn()`` on the server loop (where all state lives) and return its result."""
        if not self._running:
            raise NetworkNotRunningError("the local network is not running: call start() first")
        return cast(_T, self._thread.call(fn, timeout))

    def create_user(self, name: str) -> tuple[str, str]:
        """Add a user in a new organisation; returns ``(user_id, api_key)``."""
        user_id, _org_id, api_key = self.call(lambda: self.context.identity.create_user(name))
        return user_id, api_key
