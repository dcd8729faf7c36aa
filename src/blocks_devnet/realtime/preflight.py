"""CORS preflights: ``OPTIONS`` on a realtime route answers what a browser needs.

A page's ``fetch`` sends a preflight before a POST with a JSON body (publish, the files
API's upload-URL request) or with headers beyond the CORS safelist. The real service's
recorded answers carry ``Access-Control-Allow-Origin: *`` and ``Access-Control-Allow-Methods``
naming the request's method; no recorded answer to an ``OPTIONS`` was found, so the local
network answers the permissive preflight (docs/local-network.md, "Cross-origin answers").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import hdrs, web

from blocks_devnet.realtime.http import CORS_HEADERS

#: How long a browser may reuse a preflight answer (Firefox's cap; Chromium caps at 2 h).
MAX_AGE_SECONDS = 86400
#: Allowed request headers when the preflight names none (or names them malformed).
DEFAULT_ALLOWED_HEADERS = "Content-Type"
#: Longest ``Access-Control-Request-Headers`` echoed back.
MAX_ASKED_HEADERS_CHARS = 1024
#: A list of header names (HTTP tokens) as browsers send it.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_HEADER_NAMES = re.compile(rf"{_TOKEN}(?:[ \t]*,[ \t]*{_TOKEN})*")


def preflight_response(request: web.Request, methods: str) -> web.Response:
    """204 allowing any origin, ``methods``, and the request headers the browser asked for."""
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "").strip()
    # Echo only a well-formed list: never reflect arbitrary bytes into a response header.
    echo = len(asked) <= MAX_ASKED_HEADERS_CHARS and _HEADER_NAMES.fullmatch(asked)
    headers = {
        **CORS_HEADERS,
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: methods,
        hdrs.ACCESS_CONTROL_ALLOW_HEADERS: asked if echo else DEFAULT_ALLOWED_HEADERS,
        hdrs.ACCESS_CONTROL_MAX_AGE: str(MAX_AGE_SECONDS),
        # The allowed headers echo the request's: a cache must not hand them to another.
        hdrs.VARY: hdrs.ACCESS_CONTROL_REQUEST_HEADERS,
    }
    return web.Response(status=204, headers=headers)


def add_preflights(resources: Iterable[web.AbstractResource]) -> None:
    """Answer ``OPTIONS`` on each of ``resources`` with the methods its routes take. A
    resource with a catch-all route (``*``) answers its own preflights."""
    for resource in resources:
        methods = sorted({route.method for route in resource})
        if hdrs.METH_ANY in methods or not isinstance(resource, web.Resource):
            continue
        resource.add_route(hdrs.METH_OPTIONS, _handler(", ".join(methods)))


def _handler(methods: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def preflight(request: web.Request) -> web.Response:
        return preflight_response(request, methods)

    return preflight
