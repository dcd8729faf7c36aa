"""Accepting connections on the listening sockets, quietly at the descriptor limit.

asyncio's own accept loop, out of descriptors, logs an ERROR with a traceback for every
failed ``accept()`` (up to 100 per readiness event) and schedules a retry for each one:
measured, 1,100 half-sent requests against a 1,024 limit wrote 323 MB of tracebacks and
burnt a core. Here, at the limit, accepting pauses for :data:`ACCEPT_RETRY_SECONDS` and one
WARNING per :data:`LIMIT_WARNING_INTERVAL_SECONDS` says so; ``on_exhausted`` (the
connection guard) closes the connections that waited longest for a request, so new clients
get in while the ones being served carry on. Pending clients wait in the listen backlog.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
from collections.abc import Callable
from typing import Final

__all__ = ["AcceptLoop", "listening_sockets"]

logger = logging.getLogger(__name__)

#: How long accepting pauses when no descriptor (or kernel memory) is left.
ACCEPT_RETRY_SECONDS: Final = 0.25
#: At most one WARNING about the limit per this many seconds.
LIMIT_WARNING_INTERVAL_SECONDS: Final = 10.0
#: Connections accepted per readiness event before other work gets a turn (as asyncio).
_ACCEPT_BATCH: Final = 100
#: Listen backlog (asyncio's default).
_BACKLOG: Final = 100
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address of ``host`` (one port for
    all of them, the first one's when ``port`` is 0)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if sockets[0] is not sock:  # the same port on every address
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class AcceptLoop:
    """Accepts on ``sockets`` and serves each connection with ``protocol_factory()``."""

    def __init__(
        self,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        on_exhausted: Callable[[], int],
        *,
        ssl_context: ssl.SSLContext | None = None,
        ssl_handshake_seconds: float = 10.0,
    ) -> None:
        self.sockets = sockets
        self._factory = protocol_factory
        # TLS: the handshake runs before the protocol sees the connection, so it has a
        # timeout of its own (the guard only watches connections that finished it).
        self._ssl = ssl_context
        self._ssl_handshake_seconds = ssl_handshake_seconds
        self._on_exhausted = on_exhausted
        self._loop = asyncio.get_running_loop()
        self._retry: asyncio.TimerHandle | None = None
        self._quiet_check: asyncio.TimerHandle | None = None
        self._serving = False
        # At the limit since (loop time), refused attempts and closed connections since the
        # last WARNING, and when that WARNING was.
        self._exhausted_since: float | None = None
        self._refused = 0
        self._evicted = 0
        self._warned_at = -LIMIT_WARNING_INTERVAL_SECONDS
        self._connecting: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    def start(self) -> None:
        self._serving = True
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (connections stay open)."""
        self._serving = False
        self._pause()
        if self._quiet_check is not None:
            self._quiet_check.cancel()
        for sock in self.sockets:
            sock.close()

    def _pause(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())

    def _resume(self) -> None:
        self._retry = None
        if self._serving:
            self.start()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._exhausted(exc)
                else:  # nothing of the client's making; say it once, without a traceback
                    logger.warning("accepting a connection failed: %s", exc)
                return
            task = self._loop.create_task(self._connect(conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            if self._ssl is None:
                await self._loop.connect_accepted_socket(self._factory, conn)
            else:
                await self._loop.connect_accepted_socket(
                    self._factory,
                    conn,
                    ssl=self._ssl,
                    ssl_handshake_timeout=self._ssl_handshake_seconds,
                )
        except OSError as exc:  # the client left before its transport was set up
            logger.debug("dropped a new connection: %s", exc)
            conn.close()

    def _exhausted(self, exc: OSError) -> None:
        now = self._loop.time()
        if self._exhausted_since is None:
            self._exhausted_since = now
        self._refused += 1
        self._evicted += self._on_exhausted()
        if now - self._warned_at >= LIMIT_WARNING_INTERVAL_SECONDS:
            self._warned_at = now
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            logger.warning(
                "cannot accept connections (%s; descriptor limit %d): new clients wait in the "
                "backlog; %d accept attempts failed and %d connections waiting for a request "
                "were closed to make room since the last such warning",
                exc.strerror,
                soft,
                self._refused,
                self._evicted,
            )
            self._refused = self._evicted = 0
        self._pause()
        self._retry = self._loop.call_later(ACCEPT_RETRY_SECONDS, self._resume)
        # Said once the limit has not been hit for a whole interval.
        if self._quiet_check is not None:
            self._quiet_check.cancel()
        self._quiet_check = self._loop.call_later(LIMIT_WARNING_INTERVAL_SECONDS, self._recovered)

    def _recovered(self) -> None:
        assert self._exhausted_since is not None
        self._quiet_check = None
        elapsed = self._loop.time() - self._exhausted_since - LIMIT_WARNING_INTERVAL_SECONDS
        logger.warning(
            "accepting connections normally again, after %.1f s at the descriptor limit "
            "(%d more accept attempts failed, %d more connections closed to make room)",
            elapsed,
            self._refused,
            self._evicted,
        )
        self._exhausted_since = None
        self._refused = self._evicted = 0
        self._warned_at = -LIMIT_WARNING_INTERVAL_SECONDS
