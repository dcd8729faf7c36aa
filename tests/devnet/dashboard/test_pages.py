"""What the page renderer does with hostile or odd values (no network needed)."""

from __future__ import annotations

import base64

from blocks_devnet.dashboard import pages
from blocks_devnet.dashboard.queries import Artifact


def _inline(data: bytes, mime: str, name: str | None = None) -> Artifact:
    ref = {"kind": "inline", "mimeType": mime, "size": len(data)}
    ref["data"] = base64.b64encode(data).decode()
    if name is not None:
        ref["fileName"] = name
    return Artifact(timetoken=17, ref=ref)


def test_only_raster_images_are_previewed_inline() -> None:
    png = pages.artifact_list("t_1", [_inline(b"\x89PNG", "image/png")])
    assert '<img src="/dashboard/tasks/t_1/artifacts/17?inline=1"' in png
    svg = pages.artifact_list("t_1", [_inline(b"<svg onload=alert(1)>", "image/svg+xml")])
    assert "<img" not in svg and "<svg" not in svg


def test_names_and_text_are_escaped() -> None:
    html = pages.artifact_list(
        "t_1", [_inline(b"<b>bold</b>", "text/plain", name='"><script>x</script>')]
    )
    assert "<script>" not in html and "<b>bold" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_a_file_artifact_or_bad_base64_has_no_download_link() -> None:
    file_ref = Artifact(17, {"kind": "file", "mimeType": "text/plain", "fileId": "f", "size": 9})
    broken = Artifact(18, {"kind": "inline", "mimeType": "text/plain", "data": "***"})
    html = pages.artifact_list("t_1", [file_ref, broken])
    assert 'class="download"' not in html
    assert "download it with the SDK" in html
