"""Run an aiohttp application on its own event loop in a background thread.

Tests and users' own tests start a server in-process with this; ``blocks devnet``
runs the same application in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from blocks_devnet.accept_loop import AcceptLoop, listening_sockets
from blocks_devnet.connection_guard import ConnectionGuard, ConnectionTimeouts
from blocks_devnet.fast_path import FastConnections, FastRoute
from blocks_devnet.guarded_handler import GuardedRequestHandler

logger = logging.getLogger(__name__)

#: How long stop() waits for in-flight requests before closing connections.
SHUTDOWN_TIMEOUT_SECONDS = 2.0
#: Longest request line accepted: a 32 KiB message percent-encodes to up to three times that.
MAX_REQUEST_LINE_BYTES = 128 * 1024


class ServerStartError(RuntimeError):
    """The server could not start (port taken, bad data dir, ...)."""


class ServerThread:
    """Serves ``app_factory()`` on ``host:port`` (0 picks a free port) until ``stop()``.

    ``on_shutdown`` runs on the loop before connections close (release long-polls there).
    ``fast_routes`` are answered without aiohttp's request machinery when the request is a
    plain POST (see ``fast_path.py``); everything else is aiohttp's. ``tls``, when given,
    makes the server context at start (on the server thread) and the port speaks HTTPS.
    Every connection is under ``timeouts`` (``connection_guard.py``); connections are
    accepted by ``accept_loop.py``, quietly at the descriptor limit.
    """

    def __init__(
        self,
        app_factory: Callable[[], web.Application],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        name: str = "blocks-devnet-server",
        fast_routes: Sequence[FastRoute] = (),
        tls: Callable[[], ssl.SSLContext] | None = None,
        timeouts: ConnectionTimeouts | None = None,
    ) -> None:
        self._app_factory = app_factory
        self._tls = tls
        self._timeouts = timeouts or ConnectionTimeouts()
        self._fast_routes = tuple(fast_routes)
        self._host = host
        self._requested_port = port
        self._on_shutdown = on_shutdown
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.port = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("server is not running")
        return self._loop

    def start(self, timeout: float = 15.0) -> None:
        """Start and block until the socket accepts connections."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise ServerStartError(f"server did not start within {timeout} s")
        if self._start_error is not None:
            raise ServerStartError(
                f"server failed to start: {self._start_error}"
            ) from self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread; calling it twice is safe."""
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            # The loop may close between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("server thread did not stop within %.1f s", timeout)

    def call(self, fn: Callable[[], object], timeout: float = 10.0) -> object:
        """Run ``fn()`` on the server loop and return its result (thread-safe)."""

        async def runner() -> object:
            return fn()

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() or logged
            if not self._started.is_set():
                self._start_error = exc
                self._started.set()
            else:
                logger.exception("server loop crashed")
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        ssl_context = None if self._tls is None else self._tls()
        app = self._app_factory()
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
        )
        await runner.setup()
        assert runner.server is not None
        guard = ConnectionGuard(self._timeouts)
        aiohttp_protocol = functools.partial(
            GuardedRequestHandler,
            runner.server,
            guard,
            access_log=None,
            # GET publishes carry the whole message in the URL (PubNub allows 32 KiB).
            max_line_size=MAX_REQUEST_LINE_BYTES,
            # Routes decode bodies themselves: aiohttp's decoder cannot read the client's
            # zlib-labelled-as-gzip publish bodies and answers a bad stream with a 500.
            auto_decompress=False,
            # The guard closes idle connections; aiohttp's own timer is only a backstop.
            keepalive_timeout=self._timeouts.idle_seconds + self._timeouts.head_seconds,
        )
        fast: FastConnections | None = None
        accepting: AcceptLoop | None = None
        try:
            if self._fast_routes:
                fast = FastConnections(app, aiohttp_protocol, self._fast_routes, guard)
            accepting = AcceptLoop(
                listening_sockets(self._host, self._requested_port),
                fast or aiohttp_protocol,
                guard.evict,
                ssl_context=ssl_context,
                ssl_handshake_seconds=self._timeouts.head_seconds,
            )
            accepting.start()
            guard.start()
            self.port = accepting.port
            self._started.set()
            await self._stop_event.wait()
            if self._on_shutdown is not None:
                await self._on_shutdown()
        finally:
            if accepting is not None:
                accepting.close()
            if fast is not None:
                await fast.shutdown(SHUTDOWN_TIMEOUT_SECONDS)
                await asyncio.sleep(0)  # let cancelled long-polls finish their clean-up
            guard.stop()
            await runner.cleanup()
