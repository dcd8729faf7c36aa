"""Fuzz templates for the dashboard's routes (signed in with a session cookie).

Its pages answer HTML, its actions JSON; every answer must still be below 500. Templates
never change the fuzz task: actions target an unknown task (404) and the live feed one
whose page is gone (it ends at once instead of streaming).
"""

from __future__ import annotations

import re

from tests.devnet.fuzz.mutator import Template
from tests.devnet.fuzz.raw_http import RawRequest, q, segments, send

_FORM = ((b"Content-Type", b"application/x-www-form-urlencoded"),)


def is_dashboard(request: RawRequest) -> bool:
    """Requests to ``/`` or under ``/dashboard/`` (HTML pages, not JSON)."""
    return request.segments[:1] in ((), (b"",), (b"dashboard",))


def dashboard_session(port: int, api_key: str) -> tuple[str, str]:
    """Sign in as ``api_key``: ``(Cookie header value, CSRF token)``."""
    signed = send(
        port, RawRequest(b"POST", segments("/dashboard/login"), (), _FORM, b"api_key=" + q(api_key))
    )
    assert signed.status == 303, signed.body
    cookie = signed.headers["set-cookie"].split(";", 1)[0]
    page = send(port, RawRequest(b"GET", segments("/"), (), ((b"Cookie", cookie.encode()),)))
    found = re.search(rb'name="csrf-token" content="([^"]+)"', page.body)
    assert found is not None, page.body[:200]
    return cookie, found.group(1).decode()


def dashboard_templates(
    cookie: str, csrf: str, api_key: str, task_id: str, agent_name: str
) -> list[Template]:
    signed_in = ((b"Cookie", cookie.encode()),)

    def t(
        method: str,
        route: str,
        path: str,
        *,
        query: tuple[tuple[bytes, bytes | None], ...] = (),
        headers: tuple[tuple[bytes, bytes], ...] = signed_in,
        body: bytes = b"",
        expect: tuple[int, ...] = (200,),
    ) -> Template:
        request = RawRequest(method.encode(), segments(path), query, headers, body)
        return Template(route=(method, route), request=request, expect=expect)

    unknown = "t_fuzz_unknown"
    action = (*signed_in, (b"X-Dashboard-CSRF", csrf.encode()))
    return [
        t("GET", "/", "/"),
        t("GET", "/dashboard/login", "/dashboard/login", headers=()),
        t(
            "POST",
            "/dashboard/login",
            "/dashboard/login",
            headers=_FORM,
            body=b"api_key=" + api_key.encode(),
            expect=(303,),
        ),
        # Without the session: signing out must not end the one the other templates use.
        t("POST", "/dashboard/logout", "/dashboard/logout", headers=(), expect=(303,)),
        t(
            "GET",
            "/dashboard/tasks",
            "/dashboard/tasks",
            query=((b"agent", agent_name.encode()), (b"state", b"running")),
        ),
        t("GET", "/dashboard/tasks/{task_id}", f"/dashboard/tasks/{task_id}"),
        t(
            "GET",
            "/dashboard/tasks/{task_id}/artifacts/{timetoken}",
            f"/dashboard/tasks/{task_id}/artifacts/1",
            expect=(404,),
        ),
        t(
            "POST",
            "/dashboard/tasks/{task_id}/{action}",
            f"/dashboard/tasks/{unknown}/cancel",
            headers=action,
            expect=(404,),
        ),
        t("GET", "/dashboard/agents", "/dashboard/agents"),
        t("GET", "/dashboard/agents/{agent_name}", f"/dashboard/agents/{agent_name}"),
        t(
            "GET",
            "/dashboard/live",
            "/dashboard/live",
            query=((b"view", b"task"), (b"task", unknown.encode())),
        ),
        t("GET", "/dashboard/static/{name}", "/dashboard/static/dashboard.css"),
    ]
