"""aiohttp's connection protocol, watched by the connection guard and quiet about bad input.

Connections the fast path hands over (and every connection when it is off) are served by
this :class:`aiohttp.web.RequestHandler`. It tells the guard which phase the connection is
in (aiohttp has no timeout for a request head or body of its own), and logs a malformed
request as one DEBUG line: aiohttp logs each one at ERROR with a traceback, so any client
could fill the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from aiohttp import web
from aiohttp.web_request import BaseRequest

from blocks_devnet.connection_guard import ConnectionGuard, GuardedConnection, Phase

__all__ = ["GuardedRequestHandler"]

logger = logging.getLogger(__name__)

#: Where aiohttp's own report of a refused request goes (we log our one line instead).
_SILENT: Final = logging.getLogger(f"{__name__}.aiohttp_refusals")
_SILENT.propagate = False
_SILENT.disabled = True


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's protocol for one connection, reporting its phases to ``guard``."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, loop=asyncio.get_running_loop(), **kwargs)
        self._guard = guard
        self._watched: GuardedConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        self._watched = self._guard.watch(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._watched is not None:
            self._watched.forget()
            self._watched = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        watched = self._watched
        if watched is not None and data:
            watched.received += len(data)
            watched.enter(self._phase())

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._watched is not None:
            self._watched.writing_paused(True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._watched is not None:
            self._watched.writing_paused(False)

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        if self._watched is not None:
            # Answered: idle until the next request (unless one is queued already).
            self._watched.enter(self._phase() if self._messages else Phase.IDLE)
        return answered

    def _phase(self) -> Phase:
        # aiohttp's own state (private, checked by tests/devnet/test_connection_limits.py):
        # the request being handled, else the next parsed one; none means a head in progress.
        request = self._current_request
        if request is not None:
            payload = request.content
        elif self._messages:
            payload = self._messages[-1][1]
        else:
            return Phase.HEAD
        return Phase.BUSY if payload.is_eof() else Phase.BODY

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        # A malformed request is the client's mistake, not the server's: one line, no traceback.
        reason = " ".join(str(exc or message or status).split())  # aiohttp's spans lines
        logger.debug("refused a malformed request from %s: %.300s", request.remote, reason)
        loud, self.logger = self.logger, _SILENT
        try:
            return super().handle_error(request, status, exc, message)
        finally:
            self.logger = loud
