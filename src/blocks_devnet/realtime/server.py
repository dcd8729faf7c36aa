"""A standalone PubNub-compatible realtime server (the full network adds the backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from aiohttp import web

from blocks_devnet.connection_guard import ConnectionTimeouts
from blocks_devnet.data_dir_lock import DataDirLock
from blocks_devnet.realtime.app import (
    build_realtime_service,
    create_realtime_app,
    realtime_fast_routes,
)
from blocks_devnet.realtime.keysets import Keyset, KeysetRegistry
from blocks_devnet.realtime.message_log import DEFAULT_BUFFER_SIZE
from blocks_devnet.realtime.service import DEFAULT_LONG_POLL_SECONDS, RealtimeService
from blocks_devnet.server_thread import ServerThread
from blocks_devnet.store.database import Database

DATABASE_FILE = "devnet.sqlite3"


class RealtimeServer:
    """Serve the realtime API for ``keysets`` in a background thread.

    ``data_dir=None`` keeps everything in memory; with a directory, a restart on the same
    directory keeps history, buffers, files and revocations. ``fast_path`` answers plain
    publishes and presence calls in front of aiohttp (``blocks_devnet/fast_path.py``).
    ``timeouts`` bound idle connections, request heads and bodies (``connection_guard.py``).
    """

    def __init__(
        self,
        keysets: Sequence[Keyset],
        *,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        long_poll_seconds: float = DEFAULT_LONG_POLL_SECONDS,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        fast_path: bool = True,
        timeouts: ConnectionTimeouts | None = None,
    ) -> None:
        self.keysets = list(keysets)
        self.host = host
        self._data_dir = data_dir
        self._long_poll_seconds = long_poll_seconds
        self._buffer_size = buffer_size
        self.service: RealtimeService | None = None
        self._db: Database | None = None
        self._lock = DataDirLock(data_dir) if data_dir is not None else None
        self._thread = ServerThread(
            self._create_app,
            host=host,
            port=port,
            on_shutdown=self._shutdown,
            fast_routes=realtime_fast_routes() if fast_path else (),
            timeouts=timeouts,
        )

    @property
    def port(self) -> int:
        return self._thread.port

    @property
    def origin(self) -> str:
        """``host:port`` as ``PNConfiguration.origin`` wants it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.origin}"

    def _create_app(self) -> web.Application:
        path = None if self._data_dir is None else self._data_dir / DATABASE_FILE
        self._db = Database(path)
        self.service = build_realtime_service(
            self._db,
            KeysetRegistry(self.keysets),
            long_poll_seconds=self._long_poll_seconds,
            buffer_size=self._buffer_size,
        )
        return create_realtime_app(self.service)

    async def _shutdown(self) -> None:
        if self.service is not None:
            await self.service.stop()

    def start(self) -> RealtimeServer:
        """Lock the data dir (see :mod:`blocks_devnet.data_dir_lock`), then serve."""
        if self._lock is not None:
            self._lock.acquire()
        try:
            self._thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._thread.stop()
        if self._db is not None:
            self._db.close()
        if self._lock is not None:
            self._lock.release()

    def call(self, fn: object) -> object:
        """Run ``fn()`` on the server's loop (for tests that inspect state)."""
        return self._thread.call(fn)  # type: ignore[arg-type]

    def __enter__(self) -> RealtimeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
