"""Request helpers every backend route shares: JSON bodies, bearer auth, headers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from blocks_devnet.backend.errors import (
    TOKEN_INVALID,
    UNSUPPORTED_PROTOCOL_VERSION,
    BackendError,
    bad_request,
    unauthorized,
)
from blocks_devnet.json_input import parse_json
from blocks_network.protocol.constants import (
    PROTOCOL_VERSION_HEADER,
    SUPPORTED_PROTOCOL_VERSIONS,
    WRITE_AFFINITY_HEADER,
)

logger = logging.getLogger(__name__)

#: Largest JSON body a backend route reads (uploads go to the realtime upload target).
MAX_JSON_BODY_BYTES = 1024 * 1024
#: How long a write-affinity hint stays valid (seconds).
WRITE_AFFINITY_SECONDS = 30

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200, *, mutation: bool = False) -> web.Response:
    """A JSON answer; mutations carry ``X-Write-Affinity`` (protocol.md §10.3)."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if mutation:
        headers[WRITE_AFFINITY_HEADER] = str(int(time.time()) + WRITE_AFFINITY_SECONDS)
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), status=status, headers=headers
    )


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY_BYTES:
        raise BackendError(
            413, "PAYLOAD_TOO_LARGE", f"Request body over {MAX_JSON_BODY_BYTES} bytes."
        )
    raw = await request.read()
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise BackendError(
            413, "PAYLOAD_TOO_LARGE", f"Request body over {MAX_JSON_BODY_BYTES} bytes."
        )
    try:
        body = parse_json(raw or b"{}")
    except ValueError as exc:
        raise bad_request(f"Request body is not valid JSON ({exc}).") from None
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object.")
    return body


def bearer_token(request: web.Request, *, required: bool = True) -> str | None:
    """The ``Authorization: Bearer`` credential, or a 401 when required and absent.

    A credential that is not printable ASCII is a 401 ``TOKEN_INVALID`` even when not
    required: no token or API key this network issues has other characters, and the
    verifiers must never see undecodable text.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        if required:
            raise unauthorized("Missing Authorization: Bearer <token> header.")
        return None
    if not (token.isascii() and token.isprintable()):
        raise unauthorized(
            "Malformed Authorization header: the bearer credential must be printable ASCII "
            "(an access token or a bk_ API key).",
            TOKEN_INVALID,
        )
    return token


def check_protocol_version(request: web.Request) -> None:
    """Reject a ``Blocks-Protocol-Version`` this network does not speak (absent is fine)."""
    version = request.headers.get(PROTOCOL_VERSION_HEADER)
    if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise BackendError(
            400,
            UNSUPPORTED_PROTOCOL_VERSION,
            f"Unsupported {PROTOCOL_VERSION_HEADER} {version!r}; supported: "
            f"{', '.join(SUPPORTED_PROTOCOL_VERSIONS)}. Upgrade the SDK.",
        )


def require_str(body: dict[str, Any], name: str, *, max_length: int = 512) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"Field '{name}' is required and must be a non-empty string.")
    if len(value) > max_length:
        raise bad_request(f"Field '{name}' is longer than {max_length} characters.")
    return value


def optional_str(body: dict[str, Any], name: str, *, max_length: int = 512) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise bad_request(f"Field '{name}' must be a string of at most {max_length} characters.")
    return value


@web.middleware
async def backend_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer BackendError from the table; only backend paths are affected."""
    try:
        return await handler(request)
    except BackendError as exc:
        return json_response(exc.body(), status=exc.status)
