"""A listening socket whose accept loop runs on a thread and hands each connection on."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

_JOIN_S = 10.0


class AcceptLoop:
    """Listens on ``host`` (ephemeral port) and calls ``handle(conn)`` for each connection
    on the loop's thread; :meth:`close` stops listening and joins the thread."""

    def __init__(self, handle: Callable[[socket.socket], None], host: str = "127.0.0.1") -> None:
        self._handle = handle
        self.listener = socket.create_server((host, 0))
        self.port: int = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._handle(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        self.listener.close()
        self._thread.join(_JOIN_S)
