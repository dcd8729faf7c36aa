"""Routes of the PubNub-compatible realtime API and the middleware that maps errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from blocks_devnet import commit_gate
from blocks_devnet.fast_path import FastRoute
from blocks_devnet.realtime import channel_group_routes, files, history, pam, presence
from blocks_devnet.realtime.access import AccessGate
from blocks_devnet.realtime.channel_groups import ChannelGroups
from blocks_devnet.realtime.errors import RealtimeError, bad_request, service_error
from blocks_devnet.realtime.file_store import FileStore
from blocks_devnet.realtime.http import json_response
from blocks_devnet.realtime.keysets import KeysetRegistry
from blocks_devnet.realtime.message_log import DEFAULT_BUFFER_SIZE, MessageLog
from blocks_devnet.realtime.preflight import add_preflights
from blocks_devnet.realtime.presence import PresenceTracker
from blocks_devnet.realtime.presence_routes import handle_presence
from blocks_devnet.realtime.publish import MAX_BODY_BYTES, handle_publish, handle_signal
from blocks_devnet.realtime.service import DEFAULT_LONG_POLL_SECONDS, SERVICE_KEY, RealtimeService
from blocks_devnet.realtime.subscribe import handle_subscribe
from blocks_devnet.store.database import DEFAULT_WAL_LIMIT_BYTES, Database
from blocks_devnet.store.retention import Retention

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_realtime_service(
    db: Database,
    keysets: KeysetRegistry,
    *,
    long_poll_seconds: float = DEFAULT_LONG_POLL_SECONDS,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    retention: Retention | None = None,
    wal_limit_bytes: int = DEFAULT_WAL_LIMIT_BYTES,
) -> RealtimeService:
    messages = MessageLog(db, buffer_size=buffer_size)
    return RealtimeService(
        db=db,
        keysets=keysets,
        messages=messages,
        access=AccessGate(db),
        presence=PresenceTracker(messages),
        file_store=FileStore(db),
        channel_groups=ChannelGroups(db),
        long_poll_seconds=long_poll_seconds,
        retention=retention or Retention(None),
        wal_limit_bytes=wal_limit_bytes,
    )


#: aiohttp's own refusals (no route, wrong method, body over the size limit), as PubNub words
#: them; any other 4xx keeps aiohttp's reason phrase.
_HTTP_REFUSALS = {
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
}


def _answer(exc: RealtimeError) -> web.Response:
    return json_response(exc.body, status=exc.status, headers=exc.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every refusal from the error table; unexpected bugs are logged, not leaked."""
    try:
        return await handler(request)
    except RealtimeError as exc:
        return _answer(exc)
    except web.HTTPException as exc:
        if not 400 <= exc.status < 500:
            raise
        refusal = service_error(exc.status, _HTTP_REFUSALS.get(exc.status, exc.reason), "Balancer")
        if "Allow" in exc.headers:
            refusal.headers["Allow"] = exc.headers["Allow"]
        return _answer(refusal)
    except web.RequestPayloadError:
        # The body broke off or its transfer encoding is malformed: the client's fault.
        return _answer(bad_request("Malformed request body: send it again, whole"))
    except ConnectionError:
        raise  # the client is gone; there is no one to answer
    except Exception:
        logger.exception("unexpected error answering %s %s", request.method, request.path)
        message = "Internal Server Error: the local network logged the details"
        return _answer(service_error(500, message, "Balancer"))


async def handle_time(request: web.Request) -> web.Response:
    """``GET /time/0`` → ``[<tt>]`` (the reconnection probe; no auth)."""
    return json_response([request.app[SERVICE_KEY].messages.clock.head()])


def add_realtime_routes(app: web.Application, service: RealtimeService) -> None:
    """Mount the realtime API on ``app`` (which must use :func:`error_middleware`)."""
    app[SERVICE_KEY] = service
    router = app.router
    mounted = len(router.resources())
    router.add_get("/time/0", handle_time)
    router.add_route("GET", "/publish/{tail:.+}", handle_publish)
    router.add_route("POST", "/publish/{tail:.+}", handle_publish)
    # No HEAD twins for routes that change state: a HEAD must not publish or join.
    router.add_get("/signal/{tail:.+}", handle_signal, allow_head=False)
    router.add_get("/v2/subscribe/{tail:.+}", handle_subscribe, allow_head=False)
    presence.add_routes(router)
    history.add_routes(router)
    files.add_routes(router)
    pam.add_routes(router)
    channel_group_routes.add_routes(router)
    add_preflights(list(router.resources())[mounted:])  # browsers' CORS preflights


def realtime_fast_routes() -> list[FastRoute]:
    """The realtime routes :mod:`blocks_devnet.fast_path` may answer: POST publishes, the
    presence calls (heartbeat, state, leave, here/where now), subscribe long-polls and the
    time probe."""
    return [
        FastRoute("/publish/", handle_publish, MAX_BODY_BYTES, prefix=True),
        FastRoute("/time/0", handle_time, method="GET"),
        FastRoute("/v2/presence/sub-key/", handle_presence, prefix=True, method="GET"),
        FastRoute("/v2/subscribe/", handle_subscribe, prefix=True, method="GET", waits=True),
    ]


def create_realtime_app(
    service: RealtimeService, *, client_max_size: int = 32 * 1024 * 1024
) -> web.Application:
    """A standalone realtime application (the full local network adds the backend)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=client_max_size)
    add_realtime_routes(app, service)
    commit_gate.install(app, service.db)
    app.on_startup.append(lambda _app: service.start())
    app.on_cleanup.append(lambda _app: service.stop())
    return app
