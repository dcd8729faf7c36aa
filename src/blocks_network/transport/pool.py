"""The SDK's one pool of keep-alive connections, keyed by origin ``(scheme, host, port)``.

Every SDK request takes its connection here (through :class:`~blocks_network.transport.
base.Transport`): backend and token calls, publishes, the official client's requests and
long-polls, the sessions' subscribe loops. A connection is checked out for one exchange
(or one long-poll, or one pipelined run) and checked in after it; only a connection whose
answers were all read whole (:attr:`PlainConnection.idle`) goes back, so a failed or
partial exchange never leaks into the next request.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from typing import Final

from blocks_network.errors import ClosedError
from blocks_network.transport.connections import PlainConnection
from blocks_network.transport.tls import client_ssl_context

__all__ = ["DEFAULT_MAX_IDLE", "ConnectionPool", "Origin", "origin_key"]

#: Idle keep-alive connections kept per origin (more in flight are opened, then closed).
DEFAULT_MAX_IDLE: Final = 64
DEFAULT_TIMEOUT_S: Final = 30.0
_CLOSED: Final = "this SDK client was closed; its requests stop here (create a new client)"

#: ``(scheme, host, port)``, the port filled in from the scheme.
Origin = tuple[str, str, int]


def origin_key(scheme: str, host: str, port: int | None) -> Origin:
    return (scheme, host, port or (443 if scheme == "https" else 80))


class ConnectionPool:
    """Thread-safe. :meth:`close` closes idle connections and aborts those checked out."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_idle: int = DEFAULT_MAX_IDLE,
        closed_message: str = _CLOSED,
    ) -> None:
        self._timeout = timeout
        self._max_idle = max_idle
        self._closed_message = closed_message
        self._lock = threading.Lock()
        self._idle: dict[Origin, list[PlainConnection]] = {}
        # Checked out (requests in flight), so close() can abort them.
        self._busy: dict[PlainConnection, Origin] = {}
        #: Set by :meth:`close`; retry back-offs of this pool's users wait on it.
        self.closing = threading.Event()
        self._closed = False  # the same, cheaper to read on every checkout/checkin

    @property
    def closed(self) -> bool:
        return self._closed

    def closed_error(self) -> ClosedError:
        return ClosedError(self._closed_message)

    def checkout(
        self,
        origin: Origin,
        *,
        fresh: bool = False,
        timeout: float | None = None,
        probe: bool = False,
    ) -> tuple[PlainConnection, bool]:
        """An idle connection to ``origin`` (or, with ``fresh`` or none idle, a new one not
        yet connected), set to ``timeout``, and whether it was reused. ``probe``: first
        drop idle connections the server closed meanwhile (a syscall each; for requests
        never resent blind). Raises ClosedError after close()."""
        scheme, host, port = origin
        while True:
            with self._lock:
                if self._closed:
                    raise self.closed_error()
                idle = None if fresh else self._idle.get(origin)
                conn = idle.pop() if idle else None
                if conn is not None:
                    self._busy[conn] = origin
            reused = conn is not None
            if conn is None:
                # Built outside the lock: the first context loads the CA store from disk
                # (memoised by client_ssl_context, which reloads it when SSL_CERT_FILE changes).
                tls = client_ssl_context() if scheme == "https" else None
                conn = PlainConnection(host, port, timeout=self._timeout, tls=tls)
                with self._lock:
                    if self._closed:
                        raise self.closed_error()
                    self._busy[conn] = origin
            if reused and probe and _dropped(conn):
                self.discard(conn)
                continue
            conn.set_timeout(timeout or self._timeout)
            return conn, reused

    def checkin(self, conn: PlainConnection) -> None:
        """Give back a checked-out connection: kept for reuse when it is idle, the pool is
        open and the origin's idle list has room; closed otherwise."""
        with self._lock:
            origin = self._busy.pop(conn, None)
            if origin is not None and not self._closed and conn.idle:
                idle = self._idle.setdefault(origin, [])
                if len(idle) < self._max_idle:
                    idle.append(conn)
                    return
        conn.close()

    def discard(self, conn: PlainConnection) -> None:
        """Close a checked-out connection (failed, aborted, or not reusable)."""
        with self._lock:
            self._busy.pop(conn, None)
        conn.close()

    @property
    def checked_out(self) -> int:
        """Connections checked out and not yet checked in or discarded (tests, leaks)."""
        with self._lock:
            return len(self._busy)

    def idle_count(self, origin: Origin) -> int:
        with self._lock:
            return len(self._idle.get(origin, ()))

    def close(self) -> None:
        """Close idle connections and abort checked-out ones (they close, never back into
        the pool); every later checkout raises ClosedError. Idempotent."""
        with self._lock:
            self._closed = True
            self.closing.set()
            pools, self._idle = self._idle, {}
            busy = list(self._busy)
        for idle in pools.values():
            for conn in idle:
                conn.close()
        for conn in busy:
            abort(conn)


def abort(conn: PlainConnection) -> None:
    """Wake the thread blocked on ``conn``; it then closes the socket itself (closing it from
    here could close a descriptor already reused for another socket)."""
    sock = conn.sock
    if sock is not None:
        # shutdown() wakes a thread blocked in recv(); close() alone does not.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _dropped(conn: PlainConnection) -> bool:
    """Whether an idle pooled connection was closed (or spoken on) by the server: an idle
    keep-alive connection has nothing to read."""
    sock = conn.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket):
        # TLS may leave records (session tickets) unread on a healthy connection; a publish
        # lost on a dropped one is found by the outbox's history check instead.
        return False
    # poll(), not recv(MSG_PEEK): a socket with a timeout waits in recv() whatever the flags.
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
