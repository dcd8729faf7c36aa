"""Inline artifact decoding; save_artifacts' safe file names and partial failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks_network import ArtifactError, ArtifactSaveError, DownloadedArtifact, download_artifact
from blocks_network.consumer.artifacts import (
    artifact_file_name,
    safe_artifact_path,
    save_artifacts,
)
from blocks_network.protocol.artifacts import ArtifactRef, InlineArtifactRef


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


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a\x00b.txt", "a_b.txt"),
        ("tab\there\x7f", "tab_here_"),
        ("x" * 300, "x" * 255),
        ("x" * 300 + ".json", "x" * 250 + ".json"),
        ("é" * 200, "é" * 127),  # 254 bytes: a character is never cut in half
        ("\ud800.txt", "_.txt"),
        ("  spaced  ", "spaced"),
    ],
)
def test_unwritable_names_are_made_writable(name: str, expected: str) -> None:
    assert artifact_file_name(name, 0) == expected


def inline(data: bytes, name: str | None) -> InlineArtifactRef:
    return InlineArtifactRef.from_bytes(data, mime_type="application/octet-stream", file_name=name)


def test_one_failure_does_not_stop_the_others(tmp_path: Path) -> None:
    refs = [inline(b"0", "a.bin"), inline(b"1", "broken.bin"), inline(b"2", "c.bin")]

    def download(ref: ArtifactRef) -> DownloadedArtifact:
        if ref.file_name == "broken.bin":
            raise ArtifactError("the download failed")
        return download_artifact(ref, None)

    with pytest.raises(ArtifactSaveError, match=r"#1 'broken.bin': the download failed") as info:
        save_artifacts(refs, tmp_path, download)
    assert isinstance(info.value, ArtifactError)
    assert [p.name for p in info.value.saved] == ["a.bin", "c.bin"]
    assert info.value.failed == [(1, "broken.bin", "the download failed")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "c.bin"]


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "dir.bin").mkdir()
    refs = [inline(b"x" * 1000, "dir.bin")]
    with pytest.raises(ArtifactSaveError, match=r"dir\.bin"):
        save_artifacts(refs, tmp_path, lambda ref: download_artifact(ref, None))
    assert [p.name for p in tmp_path.iterdir()] == ["dir.bin"]


def test_all_saved_returns_the_paths_and_replaces_old_files(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"old")
    refs = [inline(b"new", "a.bin"), inline(b"2", None)]
    paths = save_artifacts(refs, tmp_path, lambda ref: download_artifact(ref, None))
    assert [p.name for p in paths] == ["a.bin", "artifact-1"]
    assert paths[0].read_bytes() == b"new"
