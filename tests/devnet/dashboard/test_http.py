"""The dashboard over plain HTTP: sessions, CSRF, bad input, another organisation's data.

No browser here: every answer is checked for its status and for what it must not contain
(another user's data, the API key, a 5xx).
"""

from __future__ import annotations

import html
import http.client
import logging
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any

import pytest

from blocks_devnet.backend.tasks.store import TaskRecord
from blocks_devnet.dashboard.queries import PAGE_ROWS
from blocks_devnet.dashboard.session import COOKIE_NAME, CSRF_HEADER
from blocks_network.consumer.parts import text_part
from blocks_network.protocol.artifacts import FileArtifactRef
from blocks_network.testing import AgentRunner, BlocksTestNetwork
from blocks_network.types import StartTaskMessage, TaskContext
from tests.devnet.backend.tasks.test_scanner import record as scanner_record
from tests.support.backend_client import make_card

TIMEOUT_S = 10.0
HOLD_S = 60.0


@dataclass
class Answer:
    status: int
    body: str
    headers: Message


class Visitor:
    """A cookie-keeping HTTP client of the dashboard (what a browser does, minus the page)."""

    def __init__(self, base_url: str, cookie: str | None = None) -> None:
        self.base_url = base_url
        self.cookies = urllib.request.HTTPCookieProcessor()
        self.opener = urllib.request.build_opener(self.cookies)
        self.cookie = cookie

    def request(
        self,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> Answer:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=dict(headers or {}), method=method
        )
        if self.cookie is not None:
            request.add_header("Cookie", self.cookie)
        try:
            with self.opener.open(request, timeout=TIMEOUT_S) as response:
                return Answer(response.status, response.read().decode(), response.headers)
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, exc.read().decode(), exc.headers)

    def sign_in(self, api_key: str) -> Answer:
        return self.request("/dashboard/login", form={"api_key": api_key})

    def csrf_token(self) -> str:
        found = re.search(r'name="csrf-token" content="([^"]+)"', self.request("/").body)
        assert found is not None
        return found.group(1)


def hold(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Run until canceled (the module's agents stop, and so cancel it, at its end)."""
    ctx.cancel_event.wait(HOLD_S)
    return {}


@pytest.fixture(scope="module")
def dev_task(blocks_network: BlocksTestNetwork, dash_agents: AgentRunner) -> str:
    """A running task of the development user (its agent, ``dash_holder``, holds it)."""
    dash_agents.start(hold, agent_name="dash_holder", card=make_card("dash_holder"))
    with blocks_network.client() as client:
        task_id = client.send_message("dash_holder", [text_part("hi")]).task_id
    deadline = time.monotonic() + TIMEOUT_S
    while (record := _record(blocks_network, task_id)) is None or record.state != "running":
        assert time.monotonic() < deadline, f"task never ran: {record}"
        time.sleep(0.02)
    return task_id


@pytest.fixture
def dev(blocks_network: BlocksTestNetwork) -> Visitor:
    visitor = Visitor(blocks_network.url)
    assert visitor.sign_in(blocks_network.api_key).status == 200
    return visitor


@pytest.fixture
def other(blocks_network: BlocksTestNetwork) -> Iterator[Visitor]:
    _user, key = blocks_network.create_user(f"dash-{secrets.token_hex(4)}")
    visitor = Visitor(blocks_network.url)
    assert visitor.sign_in(key).status == 200
    yield visitor


def _record(blocks_network: BlocksTestNetwork, task_id: str) -> TaskRecord | None:
    network = blocks_network.network
    return network.call(lambda: network.context.tasks.store.get(task_id))


@pytest.mark.parametrize(
    "path", ["/", "/dashboard/tasks", "/dashboard/tasks/t_x", "/dashboard/agents/echo"]
)
def test_pages_ask_for_sign_in_without_a_session(
    blocks_network: BlocksTestNetwork, path: str
) -> None:
    answer = Visitor(blocks_network.url).request(path)
    assert answer.status == 401
    assert 'name="api_key"' in answer.body


def test_a_forged_cookie_is_a_sign_in_page_and_is_cleared(
    blocks_network: BlocksTestNetwork, dev_task: str
) -> None:
    for forged in (secrets.token_urlsafe(32), "x" * 5000, "<script>", ""):
        visitor = Visitor(blocks_network.url, cookie=f"{COOKIE_NAME}={forged}")
        answer = visitor.request(f"/dashboard/tasks/{dev_task}")
        assert answer.status in (400, 401), forged
        assert dev_task not in answer.body
    answer = Visitor(blocks_network.url, f"{COOKIE_NAME}={secrets.token_urlsafe(32)}").request("/")
    assert answer.status == 401
    assert f"{COOKIE_NAME}=" in answer.headers["Set-Cookie"]
    assert "Max-Age=0" in answer.headers["Set-Cookie"]


def test_the_cookie_is_httponly_strict_and_the_key_is_never_logged(
    blocks_network: BlocksTestNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    visitor = Visitor(blocks_network.url)
    with caplog.at_level(logging.DEBUG):
        answer = visitor.request("/dashboard/login", form={"api_key": blocks_network.api_key})
        refused = visitor.request("/dashboard/login", form={"api_key": "bk_wrong_key_123"})
    assert answer.status == 200 and "Overview" in answer.body
    assert refused.status == 401 and "bk_wrong_key_123" not in refused.body
    (cookie,) = visitor.cookies.cookiejar
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") == "Strict"
    assert blocks_network.api_key not in cookie.value
    assert blocks_network.api_key not in caplog.text
    assert "bk_wrong_key_123" not in caplog.text


def test_a_revoked_key_signs_its_sessions_out(blocks_network: BlocksTestNetwork) -> None:
    _user, key = blocks_network.create_user("dash-revoked")
    visitor = Visitor(blocks_network.url)
    assert visitor.sign_in(key).status == 200
    assert visitor.request("/dashboard/tasks").status == 200
    network = blocks_network.network
    assert network.call(lambda: network.context.identity.revoke_api_key(key))
    assert visitor.request("/dashboard/tasks").status == 401


def test_unknown_and_foreign_task_ids_are_the_same_not_found_page(
    blocks_network: BlocksTestNetwork, dev: Visitor, other: Visitor, dev_task: str
) -> None:
    assert dev.request(f"/dashboard/tasks/{dev_task}").status == 200
    foreign = other.request(f"/dashboard/tasks/{dev_task}")
    unknown = other.request("/dashboard/tasks/t_00000000000000000000000000000000")
    assert foreign.status == unknown.status == 404
    assert "dash_holder" not in foreign.body
    assert foreign.body.replace(dev_task, "ID") == unknown.body.replace(
        "t_00000000000000000000000000000000", "ID"
    )
    listed = other.request("/dashboard/tasks")
    assert listed.status == 200 and dev_task not in listed.body and "0 task(s)" in listed.body
    artifact = other.request(f"/dashboard/tasks/{dev_task}/artifacts/1")
    assert artifact.status == 404
    odd = other.request("/dashboard/tasks/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert odd.status == 404 and "<script>alert" not in odd.body


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("state=bogus", 400),
        ("cursor=not-a-cursor", 400),
        ("agent=" + "a" * 2000, 400),
        ("cursor=" + "c" * 5000, 400),
        ("state=" + "%FF" * 20, 400),
    ],
)
def test_bad_query_parameters_are_a_clear_4xx_page(dev: Visitor, query: str, status: int) -> None:
    answer = dev.request(f"/dashboard/tasks?{query}")
    assert answer.status == status
    assert 'class="error"' in answer.body


def test_a_huge_url_is_refused_without_a_5xx(dev: Visitor) -> None:
    answer = dev.request("/dashboard/tasks?agent=" + "a" * 20_000)
    assert 400 <= answer.status < 500


def test_cancel_needs_the_csrf_token_and_a_visible_task(
    blocks_network: BlocksTestNetwork, dev: Visitor, other: Visitor, dev_task: str
) -> None:
    path = f"/dashboard/tasks/{dev_task}/cancel"
    assert dev.request(path, method="POST").status == 403
    assert dev.request(path, method="POST", headers={CSRF_HEADER: "wrong"}).status == 403
    foreign = other.request(path, method="POST", headers={CSRF_HEADER: other.csrf_token()})
    assert foreign.status == 404 and '"TASK_NOT_FOUND"' in foreign.body
    assert Visitor(blocks_network.url).request(path, method="POST").status == 401
    record = _record(blocks_network, dev_task)
    assert record is not None and record.state == "running"


def test_the_live_feed_needs_a_session_and_a_known_view(
    blocks_network: BlocksTestNetwork, dev: Visitor
) -> None:
    assert Visitor(blocks_network.url).request("/dashboard/live?view=tasks").status == 401
    assert dev.request("/dashboard/live?view=nope").status == 400


def test_the_dashboard_is_served_behind_fast_path_requests(
    blocks_network: BlocksTestNetwork,
) -> None:
    """A keep-alive connection that began with a fast-path route reaches aiohttp for ``/``."""
    host, port = blocks_network.network.origin.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_S)
    try:
        connection.request("GET", "/config.json")
        first = connection.getresponse()
        first.read()
        assert first.status == 200
        connection.request("GET", "/")
        answer = connection.getresponse()
        assert answer.status == 401 and 'name="api_key"' in answer.read().decode()
        connection.request("GET", "/dashboard/static/dashboard.js")
        script = connection.getresponse()
        assert script.status == 200 and "EventSource" in script.read().decode()
    finally:
        connection.close()


def test_terminate_acts_through_the_task_api(
    blocks_network: BlocksTestNetwork, dev: Visitor, dev_task: str
) -> None:
    """A second task waits behind ``dev_task`` (the agent runs one at a time); Terminate from
    the dashboard ends it the way TerminateTask does."""
    with blocks_network.client() as client:
        session = client.send_message("dash_holder", [text_part("second")])
        answer = dev.request(
            f"/dashboard/tasks/{session.task_id}/terminate",
            method="POST",
            headers={CSRF_HEADER: dev.csrf_token()},
        )
        assert answer.status == 200 and '"ok": true' in answer.body
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
    assert terminal.data["state"] == "canceled"
    record = _record(blocks_network, session.task_id)
    assert record is not None and record.state == "canceled" and record.reason == "terminated"


def test_another_organisations_instances_are_counted_not_listed(
    blocks_network: BlocksTestNetwork, dev: Visitor, other: Visitor, dev_task: str
) -> None:
    """The registry tells anyone how many instances a public agent has; presence details
    (instance ids, load) stay with the agent's organisation, and so does the task's
    instance."""
    record = _record(blocks_network, dev_task)
    assert record is not None and record.instance_id is not None
    assert record.instance_id in dev.request("/dashboard/agents/dash_holder").body
    assert record.instance_id in dev.request(f"/dashboard/tasks/{dev_task}").body
    seen = other.request("/dashboard/agents/dash_holder")
    assert seen.status == 200
    assert "1 instance(s) online" in seen.body and record.instance_id not in seen.body
    assert record.instance_id not in other.request("/").body


def test_an_oversized_sign_in_form_is_refused(blocks_network: BlocksTestNetwork) -> None:
    answer = Visitor(blocks_network.url).request(
        "/dashboard/login", form={"api_key": blocks_network.api_key, "pad": "x" * 10_000}
    )
    assert answer.status == 413 and "too large" in answer.body


BIG_TEXT = "0123456789abcdef" * 1500  # 24,000 bytes: over the inline limit, stored as a file


def big(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    return {"artifacts": [{"data": BIG_TEXT, "mimeType": "text/plain", "fileName": "big.txt"}]}


@pytest.fixture(scope="module")
def big_task(blocks_network: BlocksTestNetwork, dash_agents: AgentRunner) -> str:
    """A finished task whose artifact is a file (its agent and threads live with the module)."""
    dash_agents.start(big, agent_name="dash_big", card=make_card("dash_big"))
    with blocks_network.client() as client:
        session = client.send_message("dash_big", [text_part("go")])
        session.wait_for_terminal(timeout=TIMEOUT_S)
        (ref,) = session.list_artifacts()
        assert isinstance(ref, FileArtifactRef)
        return session.task_id


def test_a_file_artifact_downloads_and_a_long_history_shows_its_latest(
    blocks_network: BlocksTestNetwork, dev: Visitor, other: Visitor, big_task: str
) -> None:
    page = dev.request(f"/dashboard/tasks/{big_task}")
    (link,) = re.findall(r'href="(/dashboard/tasks/[^"]+/artifacts/\d+)" download', page.body)
    download = dev.request(link)
    assert download.status == 200 and download.body == BIG_TEXT
    assert download.headers["Content-Disposition"] == 'attachment; filename="big.txt"'
    assert other.request(link).status == 404
    network = blocks_network.network

    def publish_many() -> None:
        service = network.context.tasks
        record = service.store.get(big_task)
        assert record is not None
        for i in range(250):
            service.publish_event(record, {"type": "log", "taskId": big_task, "message": f"n{i}"})

    network.call(publish_many)
    page = dev.request(f"/dashboard/tasks/{big_task}")
    assert page.body.count('<li class="event ') == 200
    assert "event(s) not shown" in page.body and "n249" in page.body
    assert dev.request(link).body == BIG_TEXT  # the artifact event is older than the 200 shown


def test_the_overview_counts_and_charts_finished_tasks(
    dev: Visitor, other: Visitor, big_task: str
) -> None:
    # Counts by state may be seconds old (dashboard/counts.py): wait for big_task's.
    deadline = time.monotonic() + TIMEOUT_S
    while not _count(overview := dev.request("/").body, "completed"):
        assert time.monotonic() < deadline, "the completed task is never counted"
        time.sleep(0.1)
    assert re.search(r"Round-trip latency, created → ended \(latest \d+ ms\)", overview)
    bars = re.findall(r'class="rate"><title>([\d.]+) tasks/s', overview)
    assert len(bars) == 20 and sum(map(float, bars)) > 0
    stranger = other.request("/").body
    assert "(latest n/a)" in stranger and big_task not in stranger


def _count(overview: str, state: str) -> int:
    """The overview's count of tasks in ``state``."""
    found = re.search(rf'state-{state}">{state}</span> <b>(\d+)</b>', overview)
    assert found is not None, f"no {state} count on the overview"
    return int(found.group(1))


def test_a_head_request_for_the_live_feed_answers_at_once(dev: Visitor) -> None:
    answer = dev.request("/dashboard/live?view=overview", method="HEAD")
    assert answer.status == 200 and answer.headers["Content-Type"] == "text/event-stream"


def test_the_tasks_list_pages_newest_first_and_never_sends_more_than_a_page(
    blocks_network: BlocksTestNetwork,
) -> None:
    user, key = blocks_network.create_user(f"dash-pages-{secrets.token_hex(4)}")
    network = blocks_network.network
    now_ms = int(time.time() * 1000)
    ids = [f"t_page_{user}_{i:02d}" for i in range(PAGE_ROWS + 5)]

    def insert() -> None:
        for i, task_id in enumerate(ids):
            created = now_ms - i * 1000  # ids[0] is the newest
            network.context.tasks.store.insert(
                scanner_record(
                    task_id=task_id,
                    owner_id=user,
                    agent_org_id="org_elsewhere",
                    state="completed",
                    created_ms=created,
                    updated_ms=created,
                    ended_ms=created + 5,
                )
            )

    network.call(insert)
    visitor = Visitor(blocks_network.url)
    assert visitor.sign_in(key).status == 200
    first = visitor.request("/dashboard/tasks").body
    assert f"{len(ids)} task(s)" in first
    assert re.findall(r'class="task-id">([^<]+)<', first) == ids[:PAGE_ROWS]
    older = re.search(r'href="(/dashboard/tasks\?[^"]+)" rel="next"', first)
    assert older is not None and "Newest" not in first
    second = visitor.request(html.unescape(older.group(1))).body
    assert re.findall(r'class="task-id">([^<]+)<', second) == ids[PAGE_ROWS:]
    assert 'rel="next"' not in second and "⇤ Newest" in second
