"""The whole local Blocks Network as one aiohttp application on one port.

``config.json``, the backend API (``/api/v1/...``) and the realtime API share the
process, the SQLite database and the event loop.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from blocks_devnet import commit_gate
from blocks_devnet.backend import auth_routes, cdm, files_routes, registry_routes, stream_setup
from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.backend.context import CONTEXT_KEY, BackendContext
from blocks_devnet.backend.http import MAX_JSON_BODY_BYTES, backend_error_middleware
from blocks_devnet.backend.identity import IdentityStore
from blocks_devnet.backend.jwt_tokens import JwtIssuer, load_or_create_secret
from blocks_devnet.backend.keyset_store import load_or_create_keysets
from blocks_devnet.backend.registry import AgentRegistry
from blocks_devnet.backend.tasks import rpc
from blocks_devnet.backend.tasks.service import TaskService
from blocks_devnet.dashboard import routes as dashboard_routes
from blocks_devnet.fast_path import FastRoute
from blocks_devnet.realtime.app import (
    add_realtime_routes,
    build_realtime_service,
    error_middleware,
    realtime_fast_routes,
)
from blocks_devnet.realtime.keysets import KeysetRegistry
from blocks_devnet.store.database import Database
from blocks_devnet.store.retention import Retention
from blocks_network.protocol.constants import API_PATH_RPC

DATABASE_FILE = "devnet.sqlite3"
#: Uploads up to 25 MiB plus multipart overhead.
CLIENT_MAX_SIZE = 27 * 1024 * 1024


def open_database(config: DevnetConfig) -> Database:
    path: Path | None = None if config.data_dir is None else config.data_dir / DATABASE_FILE
    return Database(path)


def build_context(config: DevnetConfig, db: Database) -> BackendContext:
    """Create every component in dependency order (no I/O beyond the database)."""
    keysets = load_or_create_keysets(db)
    realtime = build_realtime_service(
        db,
        KeysetRegistry(keysets.values()),
        long_poll_seconds=config.long_poll_seconds,
        retention=Retention.days(config.retention_days),
        wal_limit_bytes=int(config.wal_limit_mb * 1024 * 1024),
    )
    ctx = BackendContext(config=config, db=db, realtime=realtime, keysets=keysets)
    ctx.jwt = JwtIssuer(load_or_create_secret(db, "jwt_secret"))
    ctx.identity = IdentityStore(db)
    ctx.registry = AgentRegistry(db)
    ctx.tasks = TaskService(ctx)
    return ctx


def devnet_fast_routes() -> list[FastRoute]:
    """The routes :mod:`blocks_devnet.fast_path` may answer: publishes, presence, polls and
    task RPCs, and the requests clients make as they start (config, tokens, registry), so a
    connection that starts with those stays on the fast path."""
    return [
        *realtime_fast_routes(),
        FastRoute(API_PATH_RPC, rpc.handle_rpc, MAX_JSON_BODY_BYTES),
        *cdm.fast_routes(),
        *auth_routes.fast_routes(),
        *registry_routes.fast_routes(),
    ]


def create_devnet_app(ctx: BackendContext) -> web.Application:
    """The application: realtime routes, backend routes, background work."""
    app = web.Application(
        middlewares=[error_middleware, backend_error_middleware], client_max_size=CLIENT_MAX_SIZE
    )
    app[CONTEXT_KEY] = ctx
    commit_gate.install(app, ctx.db)
    add_realtime_routes(app, ctx.realtime)
    cdm.add_routes(app)
    auth_routes.add_routes(app)
    registry_routes.add_routes(app)
    rpc.add_routes(app)
    files_routes.add_routes(app)
    dashboard_routes.add_routes(app, ctx)
    stream_setup.install(ctx)

    async def on_startup(_app: web.Application) -> None:
        await ctx.realtime.start()
        await ctx.tasks.start()

    async def on_cleanup(_app: web.Application) -> None:
        await ctx.tasks.stop()
        await ctx.realtime.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
