"""The dashboard in a real headless Chromium against a real local network with real agents.

One network, one browser and one signed-in browser context per module; each test drives
what a user would do and waits on what the page shows (Playwright's own waits, with
deadlines). ``DASHBOARD_SCREENSHOTS=docs/images/dashboard`` saves each page's screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_network.consumer.parts import text_part
from blocks_network.testing import AgentRunner, BlocksTestNetwork, send_and_wait
from blocks_network.types import StartTaskMessage, TaskContext
from tests.devnet.dashboard.conftest import INSTALL_HINT, chromium_path
from tests.support.backend_client import make_card

pytestmark = pytest.mark.browser

# One skip line for the whole module where no browser can be driven.
if chromium_path() is None:
    pytest.skip(INSTALL_HINT, allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason=INSTALL_HINT)
from playwright.sync_api import expect  # noqa: E402  (after the skips above)

#: Generous deadline for anything the page should show (milliseconds, Playwright's unit).
SHOW_MS = 15_000
expect.set_options(timeout=SHOW_MS)
#: How long a blocked handler waits for the test to release it (seconds).
GATE_S = 30.0
FAIL_ERROR = "the dashboard test asked to fail"
#: A 1x1 PNG (an image artifact the task page previews).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
#: The question the page asks before a Terminate (static/dashboard.js).
TERMINATE_CONFIRM = "Terminate this task now?"
XSS_STATUS = "step 1 <script>window.__xss = 1</script>"
XSS_ARTIFACT = '{"answer": 42, "html": "<img src=x onerror=\\"window.__xss=1\\">"}'

#: Gates the test releases, by the task's text: the worker waits at them mid-task.
_gates: dict[str, threading.Event] = {}


def _gate(name: str) -> threading.Event:
    return _gates.setdefault(name, threading.Event())


def card(name: str, *, streaming: bool = False) -> dict[str, Any]:
    """A published card whose description carries markup (it must show as text)."""
    document = make_card(name)
    document["identity"]["description"] = "A dashboard test agent <i>not italic</i>."
    if streaming:
        document["streams"] = {"_default": {"direction": "outbound", "format": "bytes"}}
    return document


def work(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """``block``: run until canceled. Anything else: a progress message, a stream chunk,
    wait at the gate named by the text, a second chunk, then a JSON artifact."""
    text = task.request_parts[0]["text"]
    if text == "block":
        ctx.cancel_event.wait(GATE_S)
        return {}
    if text == "fail":
        raise ValueError(FAIL_ERROR)
    if text == "image":
        return {"artifacts": [{"data": PNG, "mimeType": "image/png", "fileName": "dot.png"}]}
    ctx.report_status(XSS_STATUS)
    stream = ctx.create_stream(subscribe_grace_ms=0)
    stream.write("chunk-A")
    stream.flush()
    _gate(text).wait(GATE_S)
    stream.write("chunk-B")
    return {
        "artifacts": [
            {"data": XSS_ARTIFACT, "mimeType": "application/json", "fileName": "answer.json"}
        ]
    }


@pytest.fixture(scope="module", autouse=True)
def worker(dash_agents: AgentRunner, blocks_network: BlocksTestNetwork) -> None:
    """The module's agent, warmed by one task so its worker threads predate every test."""
    dash_agents.start(work, agent_name="dash_worker", card=card("dash_worker", streaming=True))
    _gate("warm-up").set()
    with blocks_network.client() as consumer:
        send_and_wait(consumer, "dash_worker", "warm-up", timeout=GATE_S)


@pytest.fixture(scope="module")
def signed_in(browser: Any, blocks_network: BlocksTestNetwork) -> Iterator[Any]:
    """A browser context signed in as the development user (accepts downloads)."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(blocks_network.url + "/")
    page.fill("input[name=api_key]", blocks_network.api_key)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Overview')", timeout=SHOW_MS)
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(signed_in: Any) -> Iterator[Any]:
    page = signed_in.new_page()
    page.set_default_timeout(SHOW_MS)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        # Terminate asks first (the user confirms it); any other dialog is a failure.
        if dialog.type == "confirm" and dialog.message == TERMINATE_CONFIRM:
            dialog.accept()
        else:
            dialogs.append(dialog.message)
            dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    assert page.evaluate("window.__xss") is None, "an escaped payload ran as script"
    assert dialogs == [], f"unexpected dialogs: {dialogs}"
    page.close()


@pytest.fixture
def client(blocks_network: BlocksTestNetwork) -> Iterator[Any]:
    """A consumer of the development user, destroyed with the test (its threads too)."""
    with blocks_network.client() as consumer:
        yield consumer


def screenshot(page: Any, name: str) -> None:
    """Save the page for docs/dashboard.md when DASHBOARD_SCREENSHOTS names a folder."""
    folder = os.environ.get("DASHBOARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def row_state(page: Any, task_id: str) -> Any:
    return page.locator("tr", has=page.locator(f"a.task-id:text-is('{task_id}')")).locator(".state")


def expect_text(locator: Any, text: str) -> None:
    expect(locator).to_have_text(text, timeout=SHOW_MS)


def test_sign_in_refuses_a_bad_key_and_sets_a_strict_httponly_cookie(
    browser: Any, blocks_network: BlocksTestNetwork
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(blocks_network.url + "/dashboard/tasks")
        page.fill("input[name=api_key]", "bk_not_a_real_key")
        page.click("button[type=submit]")
        expect_text(page.locator(".error"), "API key invalid or revoked: check it and try again.")
        screenshot(page, "sign-in")
        page.fill("input[name=api_key]", blocks_network.api_key)
        page.click("button[type=submit]")
        page.wait_for_selector("h1:text('Overview')", timeout=SHOW_MS)
        (cookie,) = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert blocks_network.api_key not in cookie["value"]
        assert page.evaluate("document.cookie") == ""
    finally:
        context.close()


def test_an_agent_comes_online_and_goes_offline(
    page: Any, blocks_network: BlocksTestNetwork
) -> None:
    page.goto(blocks_network.url + "/")
    runner = AgentRunner(blocks_network)
    try:
        agent = runner.start(work, agent_name="dash_presence", card=card("dash_presence"))
        online = page.locator('article[data-agent="dash_presence"] .online')
        expect_text(online, "1 online")
        row = page.locator('article[data-agent="dash_presence"] tr', has_text=agent.instance_id)
        expect_text(row.locator("td").nth(1), "online")
        # Protocol version and "since" (UTC) from the instance's presence state.
        expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
        expect(row.locator("td").nth(5)).to_have_text(
            re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
        )
        screenshot(page, "overview")
        agent.stop()
        expect_text(online, "0 online")
    finally:
        runner.stop_all()


def test_a_task_appears_live_runs_and_completes(
    page: Any, blocks_network: BlocksTestNetwork, client: Any
) -> None:
    page.goto(blocks_network.url + "/dashboard/tasks")
    page.wait_for_selector(".live-status[data-state=live]")
    session = client.send_message("dash_worker", [text_part("appear")])
    state = row_state(page, session.task_id)
    expect_text(state, "running")
    _gate("appear").set()
    expect_text(state, "completed")
    assert session.wait_for_terminal(timeout=GATE_S).data["state"] == "completed"
    screenshot(page, "tasks")


def test_a_task_page_shows_progress_stream_chunks_and_the_artifact(
    page: Any, blocks_network: BlocksTestNetwork, client: Any, tmp_path: Path
) -> None:
    session = client.send_message("dash_worker", [text_part("detail")])
    page.goto(f"{blocks_network.url}/dashboard/tasks/{session.task_id}")
    # Mid-task: the progress message (as text, not markup) and the first chunk.
    expect_text(page.locator(".event-progress .event-text", has_text="step 1"), XSS_STATUS)
    frames = page.locator(".stream .frames")
    expect_text(frames, "1")
    _gate("detail").set()
    expect_text(frames, "2")
    expect_text(page.locator(".stream .frames-list li").last, "chunk-B")
    expect_text(page.locator("dl.facts .state"), "completed")
    preview = page.locator(".artifact pre.preview")
    assert json.loads(preview.inner_text()) == json.loads(XSS_ARTIFACT)
    page.locator(".event-terminal summary").click()
    assert '"state": "completed"' in page.locator(".event-terminal pre").inner_text()
    screenshot(page, "task")
    with page.expect_download() as download_info:
        page.click("a.download")
    download = download_info.value
    assert download.suggested_filename == "answer.json"
    saved = tmp_path / "answer.json"
    download.save_as(saved)
    assert saved.read_text() == XSS_ARTIFACT


def test_an_image_artifact_is_previewed_on_the_task_page(
    page: Any, blocks_network: BlocksTestNetwork, client: Any
) -> None:
    session = client.send_message("dash_worker", [text_part("image")])
    assert session.wait_for_terminal(timeout=GATE_S).data["state"] == "completed"
    page.goto(f"{blocks_network.url}/dashboard/tasks/{session.task_id}")
    preview = page.locator(".artifact img.preview")
    expect(preview).to_be_visible()
    # Loaded and decoded by the browser (served inline, allowed by the page's CSP).
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 1", arg=preview.element_handle()
    )


def test_cancel_from_the_page_reaches_the_consumer(
    page: Any, blocks_network: BlocksTestNetwork, client: Any
) -> None:
    session = client.send_message("dash_worker", [text_part("block")])
    page.goto(f"{blocks_network.url}/dashboard/tasks/{session.task_id}")
    expect_text(page.locator("dl.facts .state"), "running")
    page.click("button[data-action=cancel]")
    terminal = session.wait_for_terminal(timeout=GATE_S)
    assert terminal.data["state"] == "canceled"
    expect_text(page.locator("dl.facts .state"), "canceled")
    assert page.locator("button[data-action]").count() == 0


def test_terminate_from_the_page_reaches_the_consumer_as_terminate_task_does(
    page: Any, blocks_network: BlocksTestNetwork, client: Any
) -> None:
    session = client.send_message("dash_worker", [text_part("block")])
    page.goto(f"{blocks_network.url}/dashboard/tasks/{session.task_id}")
    expect_text(page.locator("dl.facts .state"), "running")
    page.click("button[data-action=terminate]")
    terminal = session.wait_for_terminal(timeout=GATE_S)
    # What the SDK's own session.terminate() (TerminateTask) gives its consumer.
    assert (terminal.state, terminal.data.get("reason")) == ("canceled", "terminated")
    expect_text(page.locator("dl.facts .state"), "canceled")
    expect_text(page.locator("dl.facts .reason"), "terminated")
    assert page.locator("button[data-action]").count() == 0


def test_a_failure_appears_live_on_the_overview_with_its_reason(
    page: Any, blocks_network: BlocksTestNetwork, client: Any
) -> None:
    page.goto(blocks_network.url + "/")
    page.wait_for_selector(".live-status[data-state=live]")
    failed = page.locator("section[data-live=states] a.count", has_text="failed").locator("b")
    before = int(failed.inner_text())
    session = client.send_message("dash_worker", [text_part("fail")])
    assert session.wait_for_terminal(timeout=GATE_S).data["state"] == "failed"
    row = page.locator("section[data-live=failures] tr", has_text=session.task_id)
    expect(row.locator(".reason")).to_contain_text(FAIL_ERROR, timeout=SHOW_MS)
    expect_text(failed, str(before + 1))  # counts may lag by seconds (dashboard/counts.py)


def test_agents_page_shows_the_card(page: Any, blocks_network: BlocksTestNetwork) -> None:
    page.goto(f"{blocks_network.url}/dashboard/agents/dash_worker")
    expect_text(page.locator("p.description"), "A dashboard test agent <i>not italic</i>.")
    inputs = page.locator("h2:text-is('Inputs') + table tbody tr")
    expect(inputs.locator("td").first).to_have_text("text")
    expect(page.locator("h2:text-is('Streams') + table tbody td").first).to_have_text("_default")
    expect(page.locator("h2:text-is('Pricing') + pre")).to_be_visible()
    assert page.locator("section[data-live=instances] code.instance").count() == 1
    screenshot(page, "agent")


def test_a_second_user_sees_none_of_the_first_users_tasks(
    browser: Any, blocks_network: BlocksTestNetwork, client: Any
) -> None:
    session = client.send_message("dash_worker", [text_part("private")])
    _gate("private").set()
    session.wait_for_terminal(timeout=GATE_S)
    _user, other_key = blocks_network.create_user("dash-other")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(SHOW_MS)
        page.goto(blocks_network.url + "/dashboard/tasks")
        page.fill("input[name=api_key]", other_key)
        page.click("button[type=submit]")
        page.wait_for_selector("h1:text('Overview')")
        page.goto(blocks_network.url + "/dashboard/tasks")
        expect_text(page.locator("p.total"), "0 task(s)")
        answer = page.goto(f"{blocks_network.url}/dashboard/tasks/{session.task_id}")
        assert answer is not None and answer.status == 404
        assert session.task_id in page.locator(".error").inner_text()
        assert "dash_worker" not in page.content()
    finally:
        context.close()
