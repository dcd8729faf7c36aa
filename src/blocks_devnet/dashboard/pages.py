"""HTML of the dashboard's pages and live regions; every value from the network is escaped.

A page is a layout around regions (``<section data-live=ID>``); the same functions render a
region for the first answer and for each live update, so both always agree.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from typing import Any, Final
from urllib.parse import urlencode

from blocks_devnet.backend.tasks.params import ALL_STATES
from blocks_devnet.backend.tasks.store import TaskRecord
from blocks_devnet.backend.tasks.views import iso_ms, status_channel
from blocks_devnet.dashboard.queries import (
    AgentView,
    Artifact,
    Bucket,
    StreamView,
    TaskEvent,
)

#: Events listed on a task's page (its latest).
SHOWN_EVENTS: Final = 200
#: Artifacts previewed as text up to this many bytes.
PREVIEW_BYTES: Final = 4096
#: Images the browser may show inline (no SVG: it can carry script).
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TEXT_TYPES: Final = ("text/", "application/json")
_TERMINAL: Final = ("completed", "failed", "canceled")


def e(value: object) -> str:
    """Escape anything for HTML text and attribute values."""
    return escape("" if value is None else str(value), quote=True)


def when(epoch_ms: int | None) -> str:
    return "" if epoch_ms is None else iso_ms(epoch_ms).replace("T", " ")[:-1]


def _parse_iso(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def layout(title: str, body: str, *, nav: str, user: str | None, csrf: str = "") -> str:
    links = ""
    if user is not None:
        items = [("/", "Overview"), ("/dashboard/tasks", "Tasks"), ("/dashboard/agents", "Agents")]
        links = "".join(
            f'<a href="{href}"{" class=current" if label == nav else ""}>{label}</a>'
            for href, label in items
        )
        links += (
            f'<span class="user">{e(user)}</span>'
            '<form method="post" action="/dashboard/logout" class="logout">'
            '<button type="submit">Sign out</button></form>'
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · Blocks local network</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{e(csrf)}">'
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css">'
        '<script src="/dashboard/static/dashboard.js" defer></script>'
        f"</head><body><header><strong>Blocks local network</strong><nav>{links}</nav></header>"
        f"<main><h1>{e(title)}</h1>{body}</main></body></html>"
    )


def region(region_id: str, html: str) -> str:
    return f'<section data-live="{e(region_id)}">{html}</section>'


def live_page(live_query: Mapping[str, str], regions: Mapping[str, str], extra: str = "") -> str:
    """The regions in order, tagged with the query that keeps them live."""
    sections = "".join(region(rid, html) for rid, html in regions.items())
    return f'<div id="live" data-live-query="{e(urlencode(live_query))}">{extra}{sections}</div>'


def login(error: str | None = None) -> str:
    message = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    body = (
        f"{message}<p>Sign in with an API key of this local network "
        "(<code>blocks devnet</code> prints one as <code>BLOCKS_API_KEY</code>).</p>"
        '<form method="post" action="/dashboard/login" class="login">'
        '<label>API key <input type="password" name="api_key" autocomplete="off" required '
        'maxlength="512"></label><button type="submit">Sign in</button></form>'
    )
    return layout("Sign in", body, nav="", user=None)


def error_page(title: str, message: str, *, user: str | None) -> str:
    body = (
        f'<p class="error" role="alert">{e(message)}</p><p><a href="/">Back to the overview</a></p>'
    )
    return layout(title, body, nav="", user=user)


# --- pieces ---------------------------------------------------------------------------------


def state_badge(state: object) -> str:
    return f'<span class="state state-{e(state)}">{e(state)}</span>'


def task_link(task_id: object) -> str:
    return f'<a href="/dashboard/tasks/{e(task_id)}" class="task-id">{e(task_id)}</a>'


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], *, empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def instances_table(view: AgentView) -> str:
    if not view.own:
        return (
            f'<p class="empty">{view.online} instance(s) online; another organisation runs '
            "this agent, so its instances are not listed.</p>"
        )
    instances = view.instances
    rows = (
        [
            f'<code class="instance">{e(i.instance_id)}</code>',
            "online" if i.live else "not polling",
            e("" if i.active_tasks is None else i.active_tasks),
            e("unlimited" if i.concurrency is None else i.concurrency),
            e(i.protocol_version or ""),
            e(when(i.started_at_ms)),
        ]
        for i in instances
    )
    return _table(
        ["Instance", "Status", "Active tasks", "Capacity", "Protocol", "Since"],
        rows,
        empty="No instance online.",
    )


def task_rows(tasks: list[dict[str, Any]]) -> str:
    rows = []
    for task in tasks:
        created = _parse_iso(task.get("createdTime"))
        ended = _parse_iso(task.get("endedTime"))
        took = None if created is None or ended is None else max(ended - created, 0.0)
        rows.append(
            [
                task_link(task.get("taskId")),
                f'<a href="/dashboard/agents/{e(task.get("agentName"))}">{e(task.get("agentName"))}</a>',
                state_badge(task.get("state")),
                e(task.get("taskKind")),
                e(str(task.get("createdTime", "")).replace("T", " ").rstrip("Z")),
                e(duration_text(took)),
            ]
        )
    return _table(
        ["Task", "Agent", "State", "Kind", "Created (UTC)", "Duration"], rows, empty="No tasks."
    )


def chart(buckets: list[Bucket]) -> str:
    """Two small SVG bar charts: tasks per second and mean round trip per bucket."""
    width, height, gap = 12, 60, 2
    seconds = (buckets[1].start_ms - buckets[0].start_ms) / 1000 if len(buckets) > 1 else 1.0

    def bars(values: list[float], unit: str, css: str) -> str:
        top = max(values, default=0.0) or 1.0
        rects = []
        for index, value in enumerate(values):
            h = 0 if value <= 0 else max(2.0, value / top * height)
            rects.append(
                f'<rect x="{index * (width + gap)}" y="{height - h:.1f}" width="{width}" '
                f'height="{h:.1f}" class="{css}"><title>{value:.2f} {unit}</title></rect>'
            )
        total = len(values) * (width + gap)
        return (
            f'<svg viewBox="0 0 {total} {height}" width="{total}" height="{height}" '
            f'role="img" aria-label="{e(unit)}">{"".join(rects)}</svg>'
        )

    rates = [b.finished / seconds for b in buckets]
    latencies = [b.mean_latency_ms or 0.0 for b in buckets]
    last_rate = rates[-1] if rates else 0.0
    known = [b.mean_latency_ms for b in buckets if b.mean_latency_ms is not None]
    last_latency = f"{known[-1]:.0f} ms" if known else "n/a"
    minutes = len(buckets) * seconds / 60
    return (
        f'<div class="charts"><figure><figcaption>Tasks per second (last {minutes:.0f} min; '
        f"now {last_rate:.2f})</figcaption>{bars(rates, 'tasks/s', 'rate')}</figure>"
        f"<figure><figcaption>Round-trip latency, created → ended (latest {e(last_latency)})"
        f"</figcaption>{bars(latencies, 'ms', 'latency')}</figure></div>"
    )


def state_counts(counts: Mapping[str, int]) -> str:
    cells = "".join(
        f'<a class="count" href="/dashboard/tasks?{e(urlencode({"state": s}))}">'
        f"{state_badge(s)} <b>{counts.get(s, 0)}</b></a>"
        for s in ALL_STATES
    )
    return f'<div class="counts">{cells}</div>'


def failures(tasks: list[dict[str, Any]]) -> str:
    rows = (
        [
            task_link(t.get("taskId")),
            e(t.get("agentName")),
            e(str(t.get("endedTime", "")).replace("T", " ").rstrip("Z")),
            f'<span class="reason">{e(t.get("error") or t.get("reason") or "")}</span>',
        ]
        for t in tasks
    )
    return _table(["Task", "Agent", "Ended (UTC)", "Reason"], rows, empty="No failures.")


def agent_summary(views: list[AgentView]) -> str:
    parts = []
    for view in views:
        name = view.record.agent_name
        parts.append(
            f'<article class="agent" data-agent="{e(name)}">'
            f'<h3><a href="/dashboard/agents/{e(name)}">{e(name)}</a> '
            f'<span class="online">{view.online} online</span></h3>'
            f"{instances_table(view)}</article>"
        )
    return "".join(parts) or '<p class="empty">No agents registered.</p>'


def _json_block(value: Any) -> str:
    return f"<pre>{e(json.dumps(value, indent=2, sort_keys=True))}</pre>"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def agent_card(view: AgentView) -> str:
    card = view.record.card
    io = _mapping(card.get("io"))
    identity = _mapping(card.get("identity"))

    def ports(key: str) -> str:
        entries = io.get(key)
        rows = (
            [e(p.get("id")), e(p.get("contentType")), e(p.get("description", ""))]
            for p in (entries if isinstance(entries, list) else [])
            if isinstance(p, dict)
        )
        return _table(["Id", "Content type", "Description"], rows, empty="None.")

    stream_rows = (
        [e(name), e(s.get("direction")), e(s.get("format")), e(s.get("description", ""))]
        for name, s in _mapping(card.get("streams")).items()
        if isinstance(s, dict)
    )
    return (
        f'<p class="description">{e(identity.get("description", ""))}</p>'
        f"<p>Billing: <b>{e(view.record.billing_mode)}</b> · listing: "
        f"<b>{e(view.record.listing)}</b> · version {e(identity.get('version', ''))}</p>"
        f"<h2>Inputs</h2>{ports('inputs')}<h2>Outputs</h2>{ports('outputs')}"
        "<h2>Streams</h2>"
        + _table(["Name", "Direction", "Format", "Description"], stream_rows, empty="None.")
        + f"<h2>Pricing</h2>{_json_block(dict(view.record.pricing))}"
    )


def task_summary(record: TaskRecord, *, show_instance: bool) -> str:
    """The task's facts; the instance only for the agent's own organisation (GetTask does
    not name it)."""
    took = None
    if record.ended_ms is not None:
        took = (record.ended_ms - record.created_ms) / 1000
    facts = [
        ("State", state_badge(record.state)),
        ("Agent", f'<a href="/dashboard/agents/{e(record.agent_name)}">{e(record.agent_name)}</a>'),
        ("Kind", e(record.task_kind)),
        ("Created (UTC)", e(when(record.created_ms))),
        ("Started (UTC)", e(when(record.started_ms))),
        ("Ended (UTC)", e(when(record.ended_ms))),
        ("Duration", e(duration_text(took))),
    ]
    if show_instance:
        facts.append(("Instance", f"<code>{e(record.instance_id or '')}</code>"))
    for label, value in (("Error", record.error), ("Reason", record.reason)):
        if value:
            facts.append((label, f'<span class="reason">{e(value)}</span>'))
    rows = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts)
    buttons = ""
    if record.state not in _TERMINAL:
        buttons = (
            '<p class="actions">'
            f'<button data-action="cancel" data-task="{e(record.task_id)}">Cancel</button> '
            f'<button data-action="terminate" data-task="{e(record.task_id)}" class="danger">'
            'Terminate</button> <span class="action-result" role="status"></span></p>'
        )
    return f'<dl class="facts">{rows}</dl>{buttons}'


def _event_text(event: TaskEvent) -> str:
    message = event.message if isinstance(event.message, dict) else {}
    if event.type == "progress":
        if "message" in message:
            return str(message["message"])
        if message.get("streamEvent"):
            return f"{message['streamEvent']}: {', '.join(map(str, message.get('streams', {})))}"
        return f"state {message.get('state', '')}"
    if event.type == "terminal":
        detail = message.get("error") or message.get("reason") or ""
        return f"{message.get('state', '')} {detail}".strip()
    if event.type == "artifact":
        ref = message.get("artifactRef", {})
        if isinstance(ref, dict):
            return (
                f"{ref.get('mimeType', '')} {ref.get('size', '')} bytes {ref.get('fileName') or ''}"
            )
    if event.type == "request":
        return f"{len(message.get('requestParts', []))} part(s)"
    return str(message.get("status") or message.get("message") or "")


def timeline(events: list[TaskEvent]) -> str:
    """The latest :data:`SHOWN_EVENTS` events, with how many earlier ones are left out."""
    earlier = max(len(events) - SHOWN_EVENTS, 0)
    note = f'<p class="empty">{earlier} earlier event(s) not shown.</p>' if earlier else ""
    events = events[earlier:]
    items = "".join(
        f'<li class="event event-{e(ev.type)}"><time>{e(when(ev.time_ms))}</time> '
        f'<b class="event-type">{e(ev.type)}</b> <span class="event-text">{e(_event_text(ev))}</span>'
        f"<details><summary>raw JSON</summary>{_json_block(ev.message)}</details></li>"
        for ev in events
    )

    if not items:
        return '<p class="empty">No events yet.</p>'
    return f'{note}<ol class="timeline">{items}</ol>'


def artifact_list(record: TaskRecord, found: list[Artifact]) -> str:
    """Each artifact with a download link and a preview: inline ones in full, files on the
    task's channel by link (their bytes are read only when downloaded)."""
    channel = status_channel(record)
    parts = []
    for index, artifact in enumerate(found):
        href = f"/dashboard/tasks/{e(record.task_id)}/artifacts/{artifact.timetoken}"
        name = artifact.file_name or f"artifact-{index}"
        data = artifact.inline_bytes()
        stored_file = artifact.task_file(channel) is not None
        link = f' <a href="{href}" download class="download">Download</a>'
        if data is not None:
            preview = _preview(artifact.mime_type, data, href)
        elif stored_file:
            preview = _preview(artifact.mime_type, b"", href) if _is_image(artifact) else ""
        else:
            link = ""
            preview = '<p class="empty">Not stored on this network: nothing to download.</p>'
        size = artifact.ref.get("size", len(data or b""))
        parts.append(
            f'<article class="artifact"><h3>{e(name)} <small>{e(artifact.mime_type)}, '
            f"{e(size)} bytes</small>{link}</h3>{preview}</article>"
        )
    return "".join(parts) or '<p class="empty">No artifacts.</p>'


def _is_image(artifact: Artifact) -> bool:
    return artifact.mime_type in IMAGE_TYPES


def _preview(mime: str, data: bytes, href: str) -> str:
    if mime in IMAGE_TYPES:
        return f'<img src="{href}?inline=1" alt="artifact preview" class="preview">'
    if not mime.startswith(TEXT_TYPES):
        return ""
    text = data[:PREVIEW_BYTES].decode("utf-8", errors="replace")
    if mime == "application/json":
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(data), indent=2)[:PREVIEW_BYTES]
    more = "…" if len(data) > PREVIEW_BYTES else ""
    return f'<pre class="preview">{e(text)}{more}</pre>'


def stream_list(found: list[StreamView]) -> str:
    """Per stream: frames and bytes seen so far and the latest frames."""
    parts = []
    for view in found:
        items = "".join(f"<li><code>{e(frame)}</code></li>" for frame in view.latest)
        status = " (ended)" if view.ended else ""
        parts.append(
            f'<article class="stream" data-stream="{e(view.stream_id)}"><h3>{e(view.stream_id)} '
            f'<small><span class="frames">{view.frames}</span> frames, {view.size} bytes'
            f"{status}</small></h3>"
            f'<ol class="frames-list">{items}</ol></article>'
        )
    return "".join(parts) or '<p class="empty">No streams.</p>'


def now_ms() -> int:
    return int(time.time() * 1000)
