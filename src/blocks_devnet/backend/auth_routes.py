"""``/api/v1/auth/...``: agent connect and refresh, consumer token exchange, task read tokens.

Protocol.md §5.1-§5.5. Access tokens are signed JWTs from ``ctx.jwt``; refresh tokens rotate
on every use (:class:`~blocks_devnet.backend.identity.IdentityStore`). The protocol header is
checked everywhere except the consumer-token exchange and a consumer's refresh, which the
SDK sends without it (§0).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from blocks_devnet.backend import grants
from blocks_devnet.backend.agent_record import SCALING_MAXIMUMS
from blocks_devnet.backend.authn import authenticate, authenticate_api_key, authenticate_optional
from blocks_devnet.backend.context import BackendContext, context_of
from blocks_devnet.backend.errors import (
    AGENT_FORCED_OFFLINE,
    API_KEY_INVALID,
    REFRESH_TOKEN_INVALID,
    UNSUPPORTED_PROTOCOL_VERSION,
    BackendError,
    bad_request,
    forbidden,
    not_found,
    unauthorized,
)
from blocks_devnet.backend.http import (
    MAX_JSON_BODY_BYTES,
    bearer_token,
    check_protocol_version,
    json_response,
    read_json_object,
)
from blocks_devnet.backend.identity import SYSTEM_ORG_ID, RefreshTokenInvalid
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.registry import AgentRecord
from blocks_devnet.fast_path import FastRoute, Route
from blocks_network.protocol.channels import control_channel, is_valid_agent_name
from blocks_network.protocol.constants import (
    API_PATH_AGENT_CONNECT,
    API_PATH_AGENT_REFRESH,
    API_PATH_ANON_TASK_READ_TOKEN,
    API_PATH_CONSUMER_TOKEN,
    API_PATH_TASK_READ_TOKEN,
    BILLING_MODE_PAID,
    BILLING_MODES,
    LISTINGS,
    SUPPORTED_PROTOCOL_VERSIONS,
)
from blocks_network.protocol.errors import BILLING_MODE_MISMATCH, ProtocolError
from blocks_network.protocol.task_api import AnonTaskReadTokenRequest, TaskReadTokenRequest

logger = logging.getLogger(__name__)

# Re-exported: helper modules (the task service's RPC) import the authenticators from here.
__all__ = ["add_routes", "authenticate", "authenticate_optional"]

#: Instance ids become PubNub uuids and token bindings: no whitespace, commas or wildcards.
_INSTANCE_ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")
_MAX_INFO_CHARS = 200


@dataclass(frozen=True)
class ConnectRequest:
    """The fields of a connect body the backend acts on (the rest is client info)."""

    agent_name: str
    instance_id: str
    billing_mode: str
    listing: str | None
    concurrency: int | None
    expected_instances: int | None
    max_pending_backlog: int | None
    max_running_time_sec: int | None


def _scaling_field(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    maximum = SCALING_MAXIMUMS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise bad_request(f"Field '{name}' must be an integer from {minimum} to {maximum}.")
    return value


def _choice_field(
    body: dict[str, Any], name: str, allowed: tuple[str, ...], *, required: bool
) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or value not in allowed:
        choices = " or ".join(repr(a) for a in allowed)
        raise bad_request(
            f"Field '{name}' is required and must be {choices}."
            if required
            else f"Field '{name}' must be {choices}."
        )
    return value


def parse_connect(body: dict[str, Any]) -> ConnectRequest:
    """Validate a connect body; raises a 400 BackendError naming the field."""
    agent_name = body.get("agentName")
    if not isinstance(agent_name, str) or not is_valid_agent_name(agent_name):
        raise bad_request(
            "Field 'agentName' is required and must use only letters, digits and underscores "
            "(no hyphens or dots), e.g. 'echo_agent'."
        )
    instance_id = body.get("instanceId")
    if not isinstance(instance_id, str) or not _INSTANCE_ID_RE.fullmatch(instance_id):
        raise bad_request(
            "Field 'instanceId' is required: up to 200 letters, digits or '_.:@-' "
            "(the SDK sends AG-<agentName>-<uuid>)."
        )
    for name in ("deviceOs", "sdkLanguage", "sdkVersion", "cliVersion", "preferredProtocolVersion"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > _MAX_INFO_CHARS):
            raise bad_request(
                f"Field '{name}' must be a string of at most {_MAX_INFO_CHARS} characters."
            )
    versions = body.get("protocolVersions")
    if versions is not None:
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise bad_request("Field 'protocolVersions' must be an array of strings.")
        if not set(versions) & set(SUPPORTED_PROTOCOL_VERSIONS):
            raise BackendError(
                400,
                UNSUPPORTED_PROTOCOL_VERSION,
                f"None of protocolVersions {versions} is supported; this network speaks "
                f"{', '.join(SUPPORTED_PROTOCOL_VERSIONS)}. Upgrade the SDK.",
            )
    return ConnectRequest(
        agent_name=agent_name,
        instance_id=instance_id,
        billing_mode=_choice_field(body, "billingMode", BILLING_MODES, required=True) or "",
        listing=_choice_field(body, "listing", LISTINGS, required=False),
        concurrency=_scaling_field(body, "concurrency", 0),
        expected_instances=_scaling_field(body, "expectedInstances", 0),
        max_pending_backlog=_scaling_field(body, "maxPendingBacklog", 0),
        max_running_time_sec=_scaling_field(body, "maxRunningTimeSec", 1),
    )


def _auto_card(agent_name: str, organization: str) -> dict[str, Any]:
    """A minimal valid card for an agent that connected before it was published."""
    return {
        "identity": {
            "agentName": agent_name,
            "displayName": agent_name,
            "description": "Registered automatically when it first connected to the local network.",
            "version": "0.0.0",
            "provider": {"organization": organization},
        },
        "capabilities": {"taskKinds": ["request", "pipe"]},
    }


def _connectable_record(
    ctx: BackendContext, req: ConnectRequest, user_id: str, org_id: str
) -> AgentRecord:
    record = ctx.registry.get(req.agent_name)
    if record is None:
        if not ctx.config.auto_register_agents:
            raise not_found(
                f"Agent {req.agent_name!r} is not published: run `blocks publish` with its "
                "agent-card.json first."
            )
        if req.billing_mode == BILLING_MODE_PAID:
            # Connect carries no prices, and a paid agent needs them (never derived).
            raise bad_request(
                f"Agent {req.agent_name!r} is not published and a paid agent needs pricing: "
                "run `blocks publish` with billingMode 'paid' and a pricePerTask or "
                "pricePerMinute first."
            )
        record, _ = ctx.registry.register_or_update(
            card=_auto_card(req.agent_name, ctx.identity.org_name(org_id) or org_id),
            billing_mode=req.billing_mode,
            org_id=org_id,
            owner_user_id=user_id,
            listing=req.listing,
        )
        logger.info("auto-registered agent %s on first connect", req.agent_name)
    # Built-in agents belong to the system org; any developer may serve them locally.
    if record.org_id not in (org_id, SYSTEM_ORG_ID):
        raise forbidden(
            f"Agent {req.agent_name!r} is registered by another organisation: use its API key "
            "or publish under another agentName."
        )
    if record.forced_offline:
        raise forbidden(
            "Agent forced offline by an administrator. It must be re-enabled before it can reconnect.",
            AGENT_FORCED_OFFLINE,
        )
    if req.billing_mode != record.billing_mode:
        raise BackendError(
            409,
            BILLING_MODE_MISMATCH,
            f"Agent {req.agent_name!r} is registered with billingMode {record.billing_mode!r}, "
            f"not {req.billing_mode!r}: republish it or connect with the registered mode.",
            details={"expected": record.billing_mode, "got": req.billing_mode},
        )
    if record.org_id == org_id:
        updated = ctx.registry.update_scaling(
            req.agent_name,
            concurrency=req.concurrency,
            expected_instances=req.expected_instances,
            max_pending_backlog=req.max_pending_backlog,
            max_running_time_sec=req.max_running_time_sec,
        )
        record = updated or record
    return record


async def handle_connect(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/agent/connect`` (Bearer API key) → tokens and the control channel."""
    check_protocol_version(request)
    user_id, org_id = authenticate_api_key(request)
    req = parse_connect(await read_json_object(request))
    ctx = context_of(request)
    record = _connectable_record(ctx, req, user_id, org_id)
    principal = Principal(
        user_id=user_id,
        org_id=org_id,
        kind="agent",
        agent_id=record.agent_id,
        agent_name=record.agent_name,
        instance_id=req.instance_id,
    )
    keyset = ctx.keyset_for_environment(record.environment)
    logger.info("agent %s instance %s connected", record.agent_name, req.instance_id)
    return json_response(
        {
            "accessToken": ctx.jwt.issue(principal, ctx.config.access_token_ttl_seconds),
            "refreshToken": ctx.identity.issue_refresh_token(
                principal, ctx.config.refresh_token_ttl_seconds
            ),
            "expiresIn": ctx.config.access_token_ttl_seconds,
            "pamToken": grants.control_token(keyset, record.agent_id, req.instance_id),
            "agentId": record.agent_id,
            "controlChannel": control_channel(record.agent_id),
            "agentName": record.agent_name,
            "name": record.agent_name,
            "billingMode": record.billing_mode,
            "listing": record.listing,
            "environment": record.environment,
            "orgId": org_id,
            "userId": user_id,
        },
        status=201,
        mutation=True,
    )


def _refresh_invalid(reason: str) -> BackendError:
    return unauthorized(
        f"Refresh token invalid ({reason}): connect again (agents) or exchange the API key "
        "again (consumers).",
        REFRESH_TOKEN_INVALID,
    )


async def handle_refresh(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/agent/refresh`` ``{refreshToken}`` → rotated tokens.

    The API key bearer is optional (the refresh token is itself a secret); when sent it must
    be valid and belong to the token's user.
    """
    body = await read_json_object(request)
    token = body.get("refreshToken")
    if not isinstance(token, str) or not token:
        raise bad_request("Field 'refreshToken' is required and must be a non-empty string.")
    ctx = context_of(request)
    key_owner = authenticate_api_key(request)[0] if bearer_token(request, required=False) else None
    current = ctx.identity.peek_refresh_token(token)
    if current is not None:
        if current.kind == "agent":
            check_protocol_version(request)  # consumers send no protocol header (§0)
        if key_owner is not None and key_owner != current.user_id:
            raise _refresh_invalid("it belongs to another API key")
        if current.kind == "agent" and current.agent_name is not None:
            record = ctx.registry.get(current.agent_name)
            if record is None:
                ctx.identity.revoke_refresh_family(token)
                raise _refresh_invalid("the agent is no longer registered")
            if record.forced_offline:
                ctx.identity.revoke_refresh_family(token)
                raise forbidden(
                    "Agent forced offline by an administrator. It must be re-enabled before it "
                    "can reconnect.",
                    AGENT_FORCED_OFFLINE,
                )
    try:
        issued = ctx.identity.rotate_refresh_token(token, ctx.config.refresh_token_ttl_seconds)
    except RefreshTokenInvalid as exc:
        raise _refresh_invalid(str(exc)) from None
    ttl = ctx.config.access_token_ttl_seconds
    return json_response(
        {
            "accessToken": ctx.jwt.issue(issued.principal, ttl),
            "refreshToken": issued.token,
            "expiresIn": ttl,
            "userId": issued.principal.user_id,
        },
        mutation=True,
    )


async def handle_consumer_token(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/agent/consumer-token`` ``{apiKey}`` → a consumer access JWT."""
    body = await read_json_object(request)
    api_key = body.get("apiKey")
    if not isinstance(api_key, str) or not api_key:
        raise bad_request("Field 'apiKey' is required and must be a non-empty string.")
    ctx = context_of(request)
    identity = ctx.identity.authenticate_api_key(api_key)
    if identity is None:
        raise unauthorized("API key invalid or revoked: check BLOCKS_API_KEY.", API_KEY_INVALID)
    principal = Principal(user_id=identity[0], org_id=identity[1], kind="consumer")
    ttl = ctx.config.access_token_ttl_seconds
    return json_response(
        {
            "accessToken": ctx.jwt.issue(principal, ttl),
            "expiresIn": ttl,
            "userId": principal.user_id,
            "orgId": principal.org_id,
            "refreshToken": ctx.identity.issue_refresh_token(
                principal, ctx.config.refresh_token_ttl_seconds
            ),
        },
        mutation=True,
    )


async def handle_task_read_token(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/task-read-token`` ``{taskId, role}`` → ``{pamToken, channel, ttlMinutes}``."""
    check_protocol_version(request)
    principal = authenticate(request)
    try:
        req = TaskReadTokenRequest.from_wire(await read_json_object(request))
    except ProtocolError as exc:
        raise bad_request(str(exc)) from None
    return json_response(context_of(request).tasks.read_token_for(principal, req.task_id, req.role))


async def handle_anon_task_read_token(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/anon-task-read-token`` ``{taskId, fingerprint}`` (no Authorization)."""
    check_protocol_version(request)
    try:
        req = AnonTaskReadTokenRequest.from_wire(await read_json_object(request))
    except ProtocolError as exc:
        raise bad_request(str(exc)) from None
    return json_response(
        context_of(request).tasks.anon_read_token_for(req.task_id, req.fingerprint)
    )


def _routes() -> list[tuple[str, Route]]:
    return [
        (API_PATH_AGENT_CONNECT, handle_connect),
        (API_PATH_AGENT_REFRESH, handle_refresh),
        (API_PATH_CONSUMER_TOKEN, handle_consumer_token),
        (API_PATH_TASK_READ_TOKEN, handle_task_read_token),
        (API_PATH_ANON_TASK_READ_TOKEN, handle_anon_task_read_token),
    ]


def fast_routes() -> list[FastRoute]:
    """The token endpoints for :mod:`blocks_devnet.fast_path` (each only reads its body)."""
    return [FastRoute(path, handler, MAX_JSON_BODY_BYTES) for path, handler in _routes()]


def add_routes(app: web.Application) -> None:
    """Mount the auth routes."""
    for path, handler in _routes():
        app.router.add_post(path, handler)
