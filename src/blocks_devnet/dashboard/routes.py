"""The dashboard's routes on the local network's aiohttp application.

``/`` is the overview; everything else lives under ``/dashboard/``. Pages answer HTML
(errors as a readable page with a 4xx status), actions answer JSON. Live updates are
server-sent events from ``/dashboard/live``: the server renders the page's regions again
every :data:`LIVE_INTERVAL_SECONDS` and sends the ones that changed (docs/dashboard.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

from aiohttp import web

from blocks_devnet.backend.context import BackendContext, context_of
from blocks_devnet.backend.errors import BackendError
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks import control
from blocks_devnet.backend.tasks.params import ALL_STATES
from blocks_devnet.dashboard import counts, pages, queries
from blocks_devnet.dashboard.session import COOKIE_NAME, Session, SessionStore

logger = logging.getLogger(__name__)

#: How often a live page's regions are rendered again (seconds).
LIVE_INTERVAL_SECONDS: Final = 0.5
#: A live page waits at least this many times its render time between renders.
LIVE_SLOWDOWN: Final = 10
#: A live connection ends after this long; the browser's EventSource reconnects.
LIVE_MAX_SECONDS: Final = 300.0
#: Longest accepted query value (a cursor is far shorter) and sign-in form.
MAX_QUERY_VALUE: Final = 1024
MAX_FORM_BYTES: Final = 4096
#: Task ids and agent names in paths: anything else is not found without a lookup.
_NAME: Final = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
_STATIC: Final = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
#: No inline script or style, nothing from elsewhere: escaped data cannot run.
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

SESSIONS_KEY: web.AppKey[SessionStore] = web.AppKey("dashboard_sessions", SessionStore)
STOPPING_KEY: web.AppKey[asyncio.Event] = web.AppKey("dashboard_stopping", asyncio.Event)

Regions = dict[str, str]
RegionsFn = Callable[[BackendContext, Principal, dict[str, str]], Regions]


class DashboardError(Exception):
    """A request the dashboard refuses with a readable page (or JSON for actions)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=_SECURITY_HEADERS,
    )


def _user_label(ctx: BackendContext, principal: Principal) -> str:
    org = ctx.identity.org_name(principal.org_id) or principal.org_id
    return f"{principal.user_id} ({org})"


def _signed_in(request: web.Request) -> tuple[Session, Principal] | None:
    return request.app[SESSIONS_KEY].lookup(request.cookies.get(COOKIE_NAME))


def _query(request: web.Request, *names: str) -> dict[str, str]:
    """The named query values that are set; a value too long is refused with 400."""
    values = {}
    for name in names:
        value = request.query.get(name, "")
        if len(value) > MAX_QUERY_VALUE:
            raise DashboardError(
                400, "Bad request", f"Query parameter {name!r} is longer than {MAX_QUERY_VALUE}."
            )
        if value:
            values[name] = value
    return values


def _path_name(request: web.Request, key: str, what: str) -> str:
    value = request.match_info[key]
    if not _NAME.fullmatch(value):
        raise DashboardError(404, f"{what} not found", f"No {what.lower()} {value[:80]!r}.")
    return value


Page = Callable[[web.Request, BackendContext, Session, Principal], Awaitable[web.StreamResponse]]


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Sign-in check and error pages around a page handler (never a 5xx for bad input)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        ctx = context_of(request)
        found = _signed_in(request)
        if found is None:
            response = _html(pages.login(), status=401)
            if COOKIE_NAME in request.cookies:
                SessionStore.clear_cookie(response)
            return response
        session, principal = found
        try:
            return await handler(request, ctx, session, principal)
        except DashboardError as exc:
            body = pages.error_page(exc.title, exc.message, user=_user_label(ctx, principal))
            return _html(body, status=exc.status)
        except BackendError as exc:
            body = pages.error_page("Not available", exc.message, user=_user_label(ctx, principal))
            return _html(body, status=exc.status if 400 <= exc.status < 500 else 400)

    return wrapped


def _live_page(
    ctx: BackendContext,
    session: Session,
    principal: Principal,
    *,
    title: str,
    nav: str,
    view: str,
    query: dict[str, str],
    extra: str = "",
) -> web.Response:
    regions = LIVE_VIEWS[view](ctx, principal, query)
    body = pages.live_page({"view": view, **query}, regions, extra)
    return _html(
        pages.layout(
            title, body, nav=nav, user=_user_label(ctx, principal), csrf=session.csrf_token
        )
    )


# --- regions of each live view ----------------------------------------------------------


def overview_regions(ctx: BackendContext, principal: Principal, _query: dict[str, str]) -> Regions:
    return {
        "agents": "<h2>Agents</h2>" + pages.agent_summary(queries.agents(ctx, principal)),
        "throughput": "<h2>Throughput</h2>"
        + pages.chart(queries.throughput(ctx, principal, pages.now_ms())),
        "states": "<h2>Tasks by state</h2>"
        + pages.state_counts(counts.state_counts(ctx, principal)),
        "failures": "<h2>Recent failures</h2>"
        + pages.failures(queries.recent_failures(ctx, principal)),
    }


def tasks_regions(ctx: BackendContext, principal: Principal, query: dict[str, str]) -> Regions:
    state = query.get("state")
    if state is not None and state not in ALL_STATES:
        raise DashboardError(400, "Bad request", f"'state' must be one of {', '.join(ALL_STATES)}.")
    result = queries.tasks_page(
        ctx, principal, agent_name=query.get("agent"), state=state, cursor=query.get("cursor")
    )
    tasks: list[dict[str, Any]] = result["tasks"]
    nav = []
    if "cursor" in query:
        newest = {k: v for k, v in query.items() if k != "cursor"}
        nav.append(f'<a href="/dashboard/tasks?{pages.e(urlencode(newest))}">⇤ Newest</a>')
    if result["next"]:
        older = {**query, "cursor": result["next"]}
        nav.append(f'<a href="/dashboard/tasks?{pages.e(urlencode(older))}" rel="next">Older →</a>')
    return {
        "tasks": f'<p class="total">{result["totalCount"]} task(s)</p>'
        + pages.task_rows(tasks)
        + f'<p class="pager">{" ".join(nav)}</p>'
    }


def task_regions(ctx: BackendContext, principal: Principal, query: dict[str, str]) -> Regions:
    record = queries.task(ctx, principal, query.get("task", ""))
    events = queries.timeline(ctx, record)
    return {
        "summary": pages.task_summary(
            record, show_instance=record.agent_org_id == principal.org_id
        ),
        "artifacts": "<h2>Artifacts</h2>" + pages.artifact_list(record, queries.artifacts(events)),
        "streams": "<h2>Streams</h2>" + pages.stream_list(queries.streams(ctx, record, events)),
        "timeline": "<h2>Events</h2>" + pages.timeline(events),
    }


def agents_regions(ctx: BackendContext, principal: Principal, query: dict[str, str]) -> Regions:
    name = query.get("agent")
    if name is None:
        return {"agents": pages.agent_summary(queries.agents(ctx, principal))}
    view = queries.agent(ctx, principal, name)
    if view is None:
        raise DashboardError(404, "Agent not found", f"No agent {name[:80]!r} visible to you.")
    recent = queries.tasks_page(ctx, principal, agent_name=name, limit=10, total=False)["tasks"]
    return {
        "instances": "<h2>Instances</h2>" + pages.instances_table(view),
        "recent": "<h2>Recent tasks</h2>" + pages.task_rows(recent),
    }


LIVE_VIEWS: Final[dict[str, RegionsFn]] = {
    "overview": overview_regions,
    "tasks": tasks_regions,
    "task": task_regions,
    "agents": agents_regions,
}


# --- pages -----------------------------------------------------------------------------------


def _fixed_view(title: str, view: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page that is one live view with no parameters (the overview, the agents list)."""

    @page
    async def handler(
        request: web.Request, ctx: BackendContext, session: Session, principal: Principal
    ) -> web.StreamResponse:
        return _live_page(ctx, session, principal, title=title, nav=title, view=view, query={})

    return handler


overview = _fixed_view("Overview", "overview")
agents = _fixed_view("Agents", "agents")


def _filter_form(ctx: BackendContext, principal: Principal, query: dict[str, str]) -> str:
    agents = [view.record.agent_name for view in queries.agents(ctx, principal)]
    agent_options = '<option value="">any agent</option>' + "".join(
        f"<option{' selected' if query.get('agent') == a else ''}>{pages.e(a)}</option>"
        for a in agents
    )
    state_options = '<option value="">any state</option>' + "".join(
        f"<option{' selected' if query.get('state') == s else ''}>{pages.e(s)}</option>"
        for s in ALL_STATES
    )
    return (
        '<form method="get" action="/dashboard/tasks" class="filters">'
        f'<label>Agent <select name="agent">{agent_options}</select></label> '
        f'<label>State <select name="state">{state_options}</select></label> '
        '<button type="submit">Filter</button></form>'
    )


@page
async def tasks(
    request: web.Request, ctx: BackendContext, session: Session, principal: Principal
) -> web.StreamResponse:
    query = _query(request, "agent", "state", "cursor")
    return _live_page(
        ctx,
        session,
        principal,
        title="Tasks",
        nav="Tasks",
        view="tasks",
        query=query,
        extra=_filter_form(ctx, principal, query),
    )


@page
async def task(
    request: web.Request, ctx: BackendContext, session: Session, principal: Principal
) -> web.StreamResponse:
    task_id = _path_name(request, "task_id", "Task")
    return _live_page(
        ctx,
        session,
        principal,
        title=f"Task {task_id}",
        nav="Tasks",
        view="task",
        query={"task": task_id},
    )


@page
async def agent(
    request: web.Request, ctx: BackendContext, session: Session, principal: Principal
) -> web.StreamResponse:
    name = _path_name(request, "agent_name", "Agent")
    view = queries.agent(ctx, principal, name)
    if view is None:
        raise DashboardError(404, "Agent not found", f"No agent {name!r} visible to you.")
    return _live_page(
        ctx,
        session,
        principal,
        title=f"Agent {name}",
        nav="Agents",
        view="agents",
        query={"agent": name},
        extra=pages.agent_card(view),
    )


@page
async def artifact(
    request: web.Request, ctx: BackendContext, session: Session, principal: Principal
) -> web.StreamResponse:
    task_id = _path_name(request, "task_id", "Task")
    record = queries.task(ctx, principal, task_id)
    wanted = request.match_info["timetoken"]
    for index, found in enumerate(queries.artifacts(queries.timeline(ctx, record))):
        if str(found.timetoken) != wanted:
            continue
        data = queries.artifact_bytes(ctx, record, found)
        if data is not None:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", found.file_name or f"artifact-{index}")
            inline = request.query.get("inline") == "1" and found.mime_type in pages.IMAGE_TYPES
            content_type = found.mime_type if inline else "application/octet-stream"
            disposition = "inline" if inline else f'attachment; filename="{name}"'
            headers = {**_SECURITY_HEADERS, "Content-Disposition": disposition}
            return web.Response(body=data, content_type=content_type, headers=headers)
    raise DashboardError(404, "Artifact not found", "This task has no such stored artifact.")


# --- live updates ----------------------------------------------------------------------------


def _sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


async def live(request: web.Request) -> web.StreamResponse:
    """``text/event-stream`` of ``region`` events (JSON ``{id, html}``) for one view, then
    ``signed-out`` or ``gone`` when the session or the page's subject is no more."""
    if _signed_in(request) is None:
        raise web.HTTPUnauthorized(text="Sign in first.")
    try:
        query = _query(request, "view", "agent", "state", "cursor", "task")
        regions_of = LIVE_VIEWS.get(query.pop("view", ""))
        if regions_of is None:
            raise DashboardError(400, "Bad request", "Unknown live view.")
    except DashboardError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    headers = {**_SECURITY_HEADERS, "Content-Type": "text/event-stream"}
    if request.method == "HEAD":
        return web.Response(headers=headers)  # no feed to hold open for a bodiless answer
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    # The browser going away ends the feed quietly (it reconnects if it still wants it).
    with contextlib.suppress(ConnectionError):
        await _feed(request, response, regions_of, query)
    return response


async def _feed(
    request: web.Request, response: web.StreamResponse, regions_of: RegionsFn, query: dict[str, str]
) -> None:
    """Send the view's changed regions every interval until the session, the view, the
    connection's lifetime or the server ends."""
    ctx = context_of(request)
    stopping = request.app[STOPPING_KEY]
    sent: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIVE_MAX_SECONDS
    while loop.time() < deadline and not stopping.is_set():
        found = _signed_in(request)
        if found is None:
            await response.write(_sse("signed-out", "{}"))
            return
        began = loop.time()
        try:
            regions = regions_of(ctx, found[1], query)
        except (DashboardError, BackendError):
            # The page itself showed the error: tell the browser not to reconnect.
            await response.write(_sse("gone", "{}"))
            return
        for region_id, html in regions.items():
            if sent.get(region_id) != html:
                sent[region_id] = html
                await response.write(_sse("region", json.dumps({"id": region_id, "html": html})))
        # A page that is slow to render (a huge history) is rendered less often, so one
        # open page never takes more than 1/LIVE_SLOWDOWN of the server's time.
        pause = max(LIVE_INTERVAL_SECONDS, (loop.time() - began) * LIVE_SLOWDOWN)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), pause)


# --- sign-in and actions ---------------------------------------------------------------------


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={**_SECURITY_HEADERS, "Location": location})


async def login_form(request: web.Request) -> web.StreamResponse:
    return _html(pages.login())


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /dashboard/login`` (form ``api_key``): a session cookie and ``303 /``."""
    # Read at most a small form, whatever Content-Length says (or a chunked body).
    raw = b""
    while len(raw) <= MAX_FORM_BYTES:
        chunk = await request.content.read(MAX_FORM_BYTES + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > MAX_FORM_BYTES:
        return _html(pages.login("The sign-in form is too large."), status=413)
    fields = parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=8)
    api_key = (fields.get("api_key") or [""])[0].strip()
    session = request.app[SESSIONS_KEY].sign_in(api_key) if api_key else None
    if session is None:
        # The key itself is never logged or echoed back.
        return _html(pages.login("API key invalid or revoked: check it and try again."), 401)
    response = _see_other("/")
    request.app[SESSIONS_KEY].set_cookie(response, session, secure=request.secure)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    found = _signed_in(request)
    if found is not None:
        request.app[SESSIONS_KEY].sign_out(found[0].session_id)
    response = _see_other("/")
    SessionStore.clear_cookie(response)
    return response


async def task_action(request: web.Request) -> web.StreamResponse:
    """``POST /dashboard/tasks/{id}/cancel|terminate`` through the task API's own control
    functions; JSON ``{"ok": true, ...}`` or ``{"error": {code, message}}``."""
    found = _signed_in(request)
    if found is None:
        return web.json_response(
            {"error": {"code": "SIGNED_OUT", "message": "Sign in again."}}, status=401
        )
    session, principal = found
    if not SessionStore.csrf_ok(session, request):
        return web.json_response(
            {"error": {"code": "CSRF", "message": "Reload the page and try again."}}, status=403
        )
    ctx = context_of(request)
    task_id = request.match_info["task_id"][:200]
    try:
        if request.match_info["action"] == "cancel":
            result = control.cancel(ctx.tasks, principal, task_id, "canceled from the dashboard")
        else:
            result = control.terminate(ctx.tasks, principal, task_id)
    except BackendError as exc:
        status = exc.status if 400 <= exc.status < 500 else 400
        return web.json_response(
            {"error": {"code": exc.code, "message": exc.message}}, status=status
        )
    return web.json_response({"ok": True, **result})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    content_type = _STATIC.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    data = resources.files("blocks_devnet.dashboard").joinpath("static").joinpath(name).read_bytes()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return web.Response(body=data, content_type=content_type, headers=headers)


def add_routes(app: web.Application, ctx: BackendContext) -> None:
    """Mount the dashboard on ``app`` (``/`` and ``/dashboard/...``)."""
    app[SESSIONS_KEY] = SessionStore(ctx.identity)
    app[STOPPING_KEY] = asyncio.Event()

    async def on_shutdown(_app: web.Application) -> None:
        app[STOPPING_KEY].set()

    app.on_shutdown.append(on_shutdown)
    router = app.router
    router.add_get("/", overview)
    router.add_get("/dashboard/login", login_form)
    router.add_post("/dashboard/login", login)
    router.add_post("/dashboard/logout", logout)
    router.add_get("/dashboard/tasks", tasks)
    router.add_get("/dashboard/tasks/{task_id}", task)
    router.add_post(r"/dashboard/tasks/{task_id}/{action:cancel|terminate}", task_action)
    router.add_get("/dashboard/tasks/{task_id}/artifacts/{timetoken}", artifact)
    router.add_get("/dashboard/agents", agents)
    router.add_get("/dashboard/agents/{agent_name}", agent)
    router.add_get("/dashboard/live", live)
    router.add_get("/dashboard/static/{name}", static)
