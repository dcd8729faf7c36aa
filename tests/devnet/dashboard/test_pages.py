"""What the page renderer does with hostile or odd values (no network needed)."""

from __future__ import annotations

import base64

from blocks_devnet.dashboard import pages
from blocks_devnet.dashboard.queries import Artifact
from tests.devnet.backend.tasks.test_scanner import record

TASK = record()


def _inline(data: bytes, mime: str, name: str | None = None) -> Artifact:
    ref = {"kind": "inline", "mimeType": mime, "size": len(data)}
    ref["data"] = base64.b64encode(data).decode()
    if name is not None:
        ref["fileName"] = name
    return Artifact(timetoken=17, ref=ref)


def test_only_raster_images_are_previewed_inline() -> None:
    png = pages.artifact_list(TASK, [_inline(b"\x89PNG", "image/png")])
    assert '<img src="/dashboard/tasks/t_1/artifacts/17?inline=1"' in png
    svg = pages.artifact_list(TASK, [_inline(b"<svg onload=alert(1)>", "image/svg+xml")])
    assert "<img" not in svg and "<svg" not in svg


def test_names_and_text_are_escaped() -> None:
    html = pages.artifact_list(
        TASK, [_inline(b"<b>bold</b>", "text/plain", name='"><script>x</script>')]
    )
    assert "<script>" not in html and "<b>bold" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_only_files_on_the_tasks_own_channel_are_offered() -> None:
    """A file ref naming another channel (another task's, another org's) is never followed;
    broken base64 is not offered either."""
    ref = {"kind": "file", "mimeType": "text/plain", "fileId": "f", "fileName": "a", "size": 9}
    own = Artifact(17, {**ref, "channel": "u.org_c.t_1"})
    foreign = Artifact(18, {**ref, "channel": "u.org_x.t_9"})
    broken = Artifact(19, {"kind": "inline", "mimeType": "text/plain", "data": "***"})
    assert own.task_file("u.org_c.t_1") == ("f", "a")
    assert foreign.task_file("u.org_c.t_1") is None
    html = pages.artifact_list(TASK, [own, foreign, broken])
    assert html.count('class="download"') == 1 and "artifacts/17" in html
    assert "artifacts/18" not in html and "artifacts/19" not in html
