"""Inline artifact decoding and save_artifacts' anti-traversal file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks_network import ArtifactError, DownloadedArtifact, download_artifact
from blocks_network.consumer.artifacts import safe_artifact_path
from blocks_network.protocol.artifacts import InlineArtifactRef


def test_inline_download_needs_no_client() -> None:
    ref = InlineArtifactRef.from_bytes(b"\x00bin", mime_type="image/png", file_name="a.png")
    assert download_artifact(ref, None) == DownloadedArtifact(b"\x00bin", "image/png", "a.png")
    assert download_artifact(ref.to_wire(), None).data == b"\x00bin"


def test_bad_refs_raise_artifact_error() -> None:
    with pytest.raises(ArtifactError):
        download_artifact({"kind": "inline", "size": 1, "data": "@@@"}, None)
    with pytest.raises(ArtifactError):
        download_artifact({"kind": "weird", "size": 1}, None)
    file_ref = {"kind": "file", "size": 1, "channel": "u.o.t", "fileId": "f", "fileName": "x"}
    with pytest.raises(ArtifactError, match="needs a PubNub client"):
        download_artifact(file_ref, None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/x.txt", "x.txt"),
        ("..\\..\\win.ini", "win.ini"),
        ("..", "artifact-3"),
        ("", "artifact-3"),
        (None, "artifact-3"),
        ("dir/", "artifact-3"),
    ],
)
def test_only_the_last_name_component_is_kept(
    tmp_path: Path, name: str | None, expected: str
) -> None:
    path = safe_artifact_path(tmp_path, name, 3)
    assert path == (tmp_path / expected).resolve()
    assert path.parent == tmp_path.resolve()
