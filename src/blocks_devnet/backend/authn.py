"""Who is calling a backend route: bearer JWTs (and, where the protocol allows, API keys).

Routes call :func:`authenticate` when a credential is required and
:func:`authenticate_optional` for "optional auth" reads (registry GETs, protocol.md §5.7),
where a bad bearer degrades to anonymous instead of answering 401.
"""

from __future__ import annotations

import logging

from aiohttp import web

from blocks_devnet.backend.context import context_of
from blocks_devnet.backend.errors import API_KEY_INVALID, BackendError, unauthorized
from blocks_devnet.backend.http import bearer_token
from blocks_devnet.backend.identity import API_KEY_PREFIX
from blocks_devnet.backend.principal import Principal

logger = logging.getLogger(__name__)

__all__ = [
    "authenticate",
    "authenticate_api_key",
    "authenticate_optional",
    "is_api_key",
]


def is_api_key(credential: str) -> bool:
    """True if ``credential`` has the API-key shape (``bk_…``) rather than a JWT's."""
    return credential.startswith(API_KEY_PREFIX)


def authenticate_api_key(request: web.Request) -> tuple[str, str]:
    """``(user_id, org_id)`` of the ``Authorization: Bearer <API key>`` header.

    Raises a 401 ``API_KEY_INVALID`` BackendError when the header is missing or the key is
    unknown or revoked (the agent treats that code as fatal, which is what it should do).
    """
    key = bearer_token(request, required=False)
    if key is None:
        raise unauthorized(
            "Missing API key: send Authorization: Bearer <BLOCKS_API_KEY>.", API_KEY_INVALID
        )
    identity = context_of(request).identity.authenticate_api_key(key)
    if identity is None:
        raise unauthorized(
            "API key invalid or revoked: check BLOCKS_API_KEY (on the local network, "
            "`blocks devnet` prints a valid one).",
            API_KEY_INVALID,
        )
    return identity


def authenticate(request: web.Request, *, allow_api_key: bool = False) -> Principal:
    """The caller of a route that requires a credential.

    ``Authorization: Bearer <access JWT>`` is verified with ``ctx.jwt``; with
    ``allow_api_key`` a ``bk_…`` API key is accepted too and acts as a consumer of its
    user. Raises a 401 BackendError for a missing, expired, forged or unknown credential.
    """
    # bearer_token raises a 401 when the header is absent; "" only satisfies the type.
    token = bearer_token(request) or ""
    ctx = context_of(request)
    if allow_api_key and is_api_key(token):
        identity = ctx.identity.authenticate_api_key(token)
        if identity is None:
            raise unauthorized("API key invalid or revoked.", API_KEY_INVALID)
        return Principal(user_id=identity[0], org_id=identity[1], kind="consumer")
    return ctx.jwt.verify(token)


def authenticate_optional(request: web.Request) -> Principal | None:
    """The caller if a valid JWT or API key is presented, else None (anonymous).

    Never raises: a missing, malformed, expired or forged bearer all mean anonymous.
    """
    try:
        if bearer_token(request, required=False) is None:
            return None
        return authenticate(request, allow_api_key=True)
    except BackendError as exc:
        logger.debug("optional auth degraded to anonymous: %s", exc.message)
        return None
