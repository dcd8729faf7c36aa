"""``/api/v1/registry/agents``: look up, list, publish and delete agents (protocol.md §5.7).

Reads are "optional auth" (a bad bearer reads as anonymous); writes need an access JWT or
an API key (the CLI's ``blocks publish`` sends the key). Private agents of another
organisation answer 404 exactly like agents that do not exist.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from blocks_devnet.backend.authn import authenticate, authenticate_optional
from blocks_devnet.backend.builtin_agents import ensure_builtin_agents
from blocks_devnet.backend.context import CONTEXT_KEY, context_of
from blocks_devnet.backend.errors import BackendError, bad_request, forbidden, not_found
from blocks_devnet.backend.http import (
    MAX_JSON_BODY_BYTES,
    check_protocol_version,
    json_response,
    optional_str,
    read_json_object,
)
from blocks_devnet.backend.identity import SYSTEM_ORG_ID, SYSTEM_USER_ID
from blocks_devnet.backend.registry import MAX_PAGE_SIZE, AgentRecord
from blocks_devnet.fast_path import FastRoute
from blocks_network.protocol.constants import API_PATH_REGISTRY_AGENTS

logger = logging.getLogger(__name__)

#: Largest ``cardSummary`` kept (serialized JSON characters).
MAX_CARD_SUMMARY_CHARS = 16 * 1024


def _not_found(agent_name: str) -> BackendError:
    return not_found(
        f"Agent {agent_name!r} not found: it is not published, or it is private to another "
        "organisation. Publish it with `blocks publish`."
    )


def _visible(request: web.Request, agent_name: str) -> AgentRecord:
    ctx = context_of(request)
    principal = authenticate_optional(request)
    record = ctx.registry.get(agent_name)
    if record is None or not ctx.registry.visible_to(record, principal):
        raise _not_found(agent_name)
    return record


def _agent_name_param(request: web.Request) -> str:
    name = request.query.get("agentName", "")
    if not name.strip():
        raise bad_request("Query parameter 'agentName' is required.")
    return name


def _limit_param(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return MAX_PAGE_SIZE
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request(f"Parameter 'limit' must be an integer, got {raw!r}.") from None
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise bad_request(f"Parameter 'limit' must be between 1 and {MAX_PAGE_SIZE}.")
    return limit


def _with_availability(request: web.Request, record: AgentRecord, *, full: bool) -> dict[str, Any]:
    """The record's wire form plus ``onlineInstances``/``freeSlots`` (local-network extension,
    docs/local-network.md): whether anything would start a task now."""
    return {**record.to_wire(full=full), **context_of(request).tasks.availability(record)}


async def handle_get(request: web.Request) -> web.Response:
    """``?agentName=`` → ``{agent}``; otherwise a page ``{agents, next, totalCount}``."""
    check_protocol_version(request)
    if "agentName" in request.query:
        record = _visible(request, _agent_name_param(request))
        return json_response({"agent": _with_availability(request, record, full=True)})
    ctx = context_of(request)
    full = request.query.get("include") == "full"
    page = ctx.registry.list(
        authenticate_optional(request),
        tag=request.query.get("tag") or request.query.get("skill") or None,
        listing=request.query.get("listing") or None,
        cursor=request.query.get("cursor") or None,
        limit=_limit_param(request),
    )
    return json_response(
        {
            "agents": [_with_availability(request, r, full=full) for r in page.agents],
            "next": page.next,
            "totalCount": page.total_count,
        }
    )


def _card_summary(body: dict[str, Any]) -> Any:
    summary = body.get("cardSummary")
    if summary is not None and len(json.dumps(summary)) > MAX_CARD_SUMMARY_CHARS:
        raise bad_request(
            f"Field 'cardSummary' is larger than {MAX_CARD_SUMMARY_CHARS} characters."
        )
    return summary


async def handle_register(request: web.Request) -> web.Response:
    """Publish or update an agent: ``{card, billingMode, pricing?, listing?, cardRef?, cardSummary?}``."""
    check_protocol_version(request)
    principal = authenticate(request, allow_api_key=True)
    body = await read_json_object(request)
    card = body.get("card")
    if not isinstance(card, dict):
        raise bad_request("Field 'card' is required and must be the agent card object.")
    billing_mode = body.get("billingMode")
    if not isinstance(billing_mode, str):
        raise bad_request(
            "Field 'billingMode' is required: 'free' or 'paid' (it is never derived from pricing)."
        )
    record, created = context_of(request).registry.register_or_update(
        card=card,
        billing_mode=billing_mode,
        org_id=principal.org_id,
        owner_user_id=principal.user_id,
        pricing=body.get("pricing"),
        listing=optional_str(body, "listing", max_length=16),
        card_ref=optional_str(body, "cardRef", max_length=2048),
        card_summary=_card_summary(body),
    )
    return json_response({"agent": record.to_wire()}, status=201 if created else 200, mutation=True)


async def handle_delete(request: web.Request) -> web.Response:
    """``?agentName=`` → remove the caller's organisation's agent; 404 if not visible."""
    check_protocol_version(request)
    principal = authenticate(request, allow_api_key=True)
    agent_name = _agent_name_param(request)
    ctx = context_of(request)
    record = ctx.registry.get(agent_name)
    if record is None or not ctx.registry.visible_to(record, principal):
        raise _not_found(agent_name)
    if record.org_id != principal.org_id:
        raise forbidden(
            f"Agent {agent_name!r} belongs to another organisation; only it can delete it."
        )
    ctx.registry.delete(agent_name)
    logger.info("deleted agent %s", agent_name)
    return json_response({"deleted": True, "agentName": agent_name}, mutation=True)


def fast_routes() -> list[FastRoute]:
    """Registry lookups and registration for :mod:`blocks_devnet.fast_path` (an agent's
    start-up requests; PUT and DELETE stay with aiohttp)."""
    return [
        FastRoute(API_PATH_REGISTRY_AGENTS, handle_get, method="GET"),
        FastRoute(API_PATH_REGISTRY_AGENTS, handle_register, MAX_JSON_BODY_BYTES),
    ]


def add_routes(app: web.Application) -> None:
    """Mount the registry routes; registers the built-in agents at startup when configured."""
    app.router.add_get(API_PATH_REGISTRY_AGENTS, handle_get)
    app.router.add_post(API_PATH_REGISTRY_AGENTS, handle_register)
    app.router.add_put(API_PATH_REGISTRY_AGENTS, handle_register)
    app.router.add_delete(API_PATH_REGISTRY_AGENTS, handle_delete)

    async def register_builtins(app: web.Application) -> None:
        ctx = app[CONTEXT_KEY]
        if ctx.config.register_builtin_agents:
            ctx.identity.ensure_system_identity()
            ensure_builtin_agents(ctx.registry, SYSTEM_ORG_ID, SYSTEM_USER_ID)

    app.on_startup.append(register_builtins)
