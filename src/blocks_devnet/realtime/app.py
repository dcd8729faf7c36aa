"""Routes of the PubNub-compatible realtime API and the middleware that maps errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from blocks_devnet.realtime import files, history, pam, presence
from blocks_devnet.realtime.access import AccessGate
from blocks_devnet.realtime.errors import RealtimeError
from blocks_devnet.realtime.file_store import FileStore
from blocks_devnet.realtime.http import json_response
from blocks_devnet.realtime.keysets import KeysetRegistry
from blocks_devnet.realtime.message_log import DEFAULT_BUFFER_SIZE, MessageLog
from blocks_devnet.realtime.presence import PresenceTracker
from blocks_devnet.realtime.publish import handle_publish, handle_signal
from blocks_devnet.realtime.service import DEFAULT_LONG_POLL_SECONDS, SERVICE_KEY, RealtimeService
from blocks_devnet.realtime.subscribe import handle_subscribe
from blocks_devnet.store.database import Database

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_realtime_service(
    db: Database,
    keysets: KeysetRegistry,
    *,
    long_poll_seconds: float = DEFAULT_LONG_POLL_SECONDS,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> RealtimeService:
    messages = MessageLog(db, buffer_size=buffer_size)
    return RealtimeService(
        db=db,
        keysets=keysets,
        messages=messages,
        access=AccessGate(db),
        presence=PresenceTracker(messages),
        file_store=FileStore(db),
        long_poll_seconds=long_poll_seconds,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every refusal from the error table; unexpected bugs are logged, not leaked."""
    try:
        return await handler(request)
    except RealtimeError as exc:
        return json_response(exc.body, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status == 404:
            return json_response(
                {"status": 404, "message": "Not Found", "error": True, "service": "Balancer"}, 404
            )
        if exc.status == 405:
            return json_response(
                {
                    "status": 405,
                    "message": "Method Not Allowed",
                    "error": True,
                    "service": "Balancer",
                },
                405,
            )
        if exc.status == 413:
            return json_response(
                {
                    "status": 413,
                    "message": "Request Entity Too Large",
                    "error": True,
                    "service": "Balancer",
                },
                413,
            )
        raise
    except json.JSONDecodeError:
        return json_response(
            {"status": 400, "message": "Invalid JSON", "error": True, "service": "Balancer"}, 400
        )


async def handle_time(request: web.Request) -> web.Response:
    """``GET /time/0`` → ``[<tt>]`` (the reconnection probe; no auth)."""
    return json_response([request.app[SERVICE_KEY].messages.clock.head()])


def add_realtime_routes(app: web.Application, service: RealtimeService) -> None:
    """Mount the realtime API on ``app`` (which must use :func:`error_middleware`)."""
    app[SERVICE_KEY] = service
    router = app.router
    router.add_get("/time/0", handle_time)
    router.add_route("GET", "/publish/{tail:.+}", handle_publish)
    router.add_route("POST", "/publish/{tail:.+}", handle_publish)
    router.add_get("/signal/{tail:.+}", handle_signal)
    router.add_get("/v2/subscribe/{tail:.+}", handle_subscribe)
    presence.add_routes(router)
    history.add_routes(router)
    files.add_routes(router)
    pam.add_routes(router)


def create_realtime_app(
    service: RealtimeService, *, client_max_size: int = 32 * 1024 * 1024
) -> web.Application:
    """A standalone realtime application (the full local network adds the backend)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=client_max_size)
    add_realtime_routes(app, service)
    app.on_startup.append(lambda _app: service.start())
    app.on_cleanup.append(lambda _app: service.stop())
    return app
