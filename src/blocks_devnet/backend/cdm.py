"""The CDM config document of the local network (protocol.md §1).

Served at ``/config.json`` (what ``BLOCKS_CDM_URL`` points at) and at ``/api/v1/cdm`` (the
path the seed README shows). Both keysets, ``api.baseUrl`` and the realtime origin are given
as the client reached us (its ``Host`` header), so the same document works on loopback, from
a container or across a LAN; over TLS (``blocks devnet --tls``) they say ``https`` and
``ssl: true``.
"""

from __future__ import annotations

from aiohttp import web

from blocks_devnet.backend.context import context_of
from blocks_devnet.backend.http import json_response
from blocks_devnet.fast_path import FastRoute
from blocks_network.protocol.cdm import CdmConfig, Keyset, RealtimeOrigin

CONFIG_PATHS = ("/config.json", "/api/v1/cdm")


def cdm_document(
    host: str, playground: Keyset, network: Keyset, *, tls: bool = False
) -> dict[str, object]:
    """The document for a client that reached the server at ``host`` (``HOST:PORT``)."""
    return CdmConfig(
        playground=playground,
        network=network,
        api_base_url=f"{'https' if tls else 'http'}://{host}",
        realtime=RealtimeOrigin(origin=host, ssl=tls),
    ).to_wire()


async def handle_config(request: web.Request) -> web.Response:
    """``GET /config.json`` → ``{playground, network, api:{baseUrl}, realtime:{origin, ssl}}``."""
    ctx = context_of(request)
    host = request.host
    keysets = {
        name: Keyset(publish_key=k.publish_key, subscribe_key=k.subscribe_key)
        for name, k in ctx.keysets.items()
    }
    return json_response(
        cdm_document(host, keysets["playground"], keysets["network"], tls=ctx.config.tls)
    )


def fast_routes() -> list[FastRoute]:
    """The CDM document for :mod:`blocks_devnet.fast_path` (a client's first request)."""
    return [FastRoute(path, handle_config, method="GET") for path in CONFIG_PATHS]


def add_routes(app: web.Application) -> None:
    """Mount the CDM document on both of its paths."""
    for path in CONFIG_PATHS:
        app.router.add_get(path, handle_config)
