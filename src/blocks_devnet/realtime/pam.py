"""Access Manager v3 routes: grant_token and revoke_token (pubnub-wire.md §7.1).

Both need a request signed with the keyset's secret key: only a "server" client may
mint or revoke tokens.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from aiohttp import web

from blocks_devnet.json_input import parse_json
from blocks_devnet.realtime.access_tokens import (
    SERVICE,
    GrantRequestError,
    grant_error_body,
    grant_from_request_body,
    issue_token,
    token_expiry,
)
from blocks_devnet.realtime.errors import RealtimeError, bad_request, forbidden
from blocks_devnet.realtime.http import RealtimeRequest, build_request, json_response
from blocks_devnet.realtime.service import service_of

#: Grant bodies are small; a large one is a mistake.
MAX_GRANT_BODY_BYTES = 256 * 1024


def _require_signed(req: RealtimeRequest) -> None:
    if not req.signed:
        # Real PubNub answers an unsigned grant with 403: only secret-key clients may grant.
        raise forbidden([])


async def handle_grant(request: web.Request) -> web.Response:
    """``POST /v3/pam/{sub}/grant`` → ``{"data":{"message":"Success","token":...}}``."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=2)
    if len(req.segments) != 4 or req.segments[3] != "grant":
        raise bad_request("Invalid path: expected /v3/pam/{sub}/grant", SERVICE)
    if request.content_length is not None and request.content_length > MAX_GRANT_BODY_BYTES:
        raise bad_request("Grant body too large", SERVICE)
    body = await request.read()
    if len(body) > MAX_GRANT_BODY_BYTES:
        raise bad_request("Grant body too large", SERVICE)
    service.access.verify_signature(req, body)
    _require_signed(req)
    try:
        parsed = parse_json(body)
    except ValueError:
        raise RealtimeError(
            400, grant_error_body("Invalid request body", "The body must be valid JSON.", "body")
        ) from None
    try:
        grant = grant_from_request_body(parsed, time.time())
    except GrantRequestError as exc:
        raise RealtimeError(400, exc.body) from None
    token = issue_token(grant, req.keyset.secret_key)
    return json_response(
        {"data": {"message": "Success", "token": token}, "service": SERVICE, "status": 200}
    )


async def handle_revoke(request: web.Request) -> web.Response:
    """``DELETE /v3/pam/{sub}/grant/{token}``: the token stops working at once."""
    service = service_of(request)
    req = build_request(request, service.keysets, subscribe_key_index=2)
    if len(req.segments) != 5 or req.segments[3] != "grant" or not req.segments[4]:
        raise bad_request("Invalid path: expected /v3/pam/{sub}/grant/{token}", SERVICE)
    service.access.verify_signature(req, b"")
    _require_signed(req)
    token = unquote(req.segments[4])
    expiry = token_expiry(token)
    if expiry is None:
        # Our choice (the real text for this case is not recorded): the same shape as expired.
        raise _invalid_token("Token could not be parsed.")
    if time.time() >= expiry:
        raise _invalid_token("Token is expired.")  # the real service's answer
    service.access.revoke(req.keyset.subscribe_key, token)
    return json_response({"status": 200, "data": {"message": "Success"}, "service": SERVICE})


def _invalid_token(detail: str) -> RealtimeError:
    body = grant_error_body("Invalid token", detail, "token", source="revoke", location_type="path")
    return RealtimeError(400, body)


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the Access Manager routes."""
    router.add_post("/v3/pam/{sub}/grant", handle_grant)
    router.add_delete("/v3/pam/{sub}/grant/{tail:.+}", handle_revoke)
