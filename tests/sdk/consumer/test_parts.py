"""text_part / file_part and how send_message encodes them (inline vs presigned upload)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from blocks_network import ArtifactError, ConfigError, file_part, text_part
from blocks_network.consumer.parts import encode_request_parts
from blocks_network.protocol.constants import MAX_UPLOAD_BYTES


def test_text_part() -> None:
    assert text_part("Hello") == {"partId": "text", "text": "Hello"}
    assert text_part("x", part_id="q") == {"partId": "q", "text": "x"}
    with pytest.raises(ConfigError):
        text_part(b"bytes")  # type: ignore[arg-type]


def test_file_part_from_bytes_path_and_str(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert file_part(b"\x00\x01\x02", file_name="raw.bin")["file"] == b"\x00\x01\x02"
    assert file_part(bytearray(b"ab"))["fileName"] == "file"
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    monkeypatch.chdir(tmp_path)
    part = file_part("./data.csv", content_type="text/csv")
    assert part == {
        "partId": "file",
        "contentType": "text/csv",
        "fileName": "data.csv",
        "file": b"a,b\n1,2\n",
    }
    assert file_part(Path("data.csv"), part_id="doc")["partId"] == "doc"


def test_file_part_missing_path_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such file"):
        file_part(tmp_path / "nope.pdf")
    with pytest.raises(ArtifactError, match="not a regular file"):
        file_part(tmp_path)
    with pytest.raises(ConfigError):
        file_part(42)  # type: ignore[arg-type]


def test_file_over_the_ceiling_is_refused_early(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(ArtifactError, match="25 MiB"):
        file_part(big)
    with pytest.raises(ArtifactError, match="25 MiB"):
        file_part(bytes(MAX_UPLOAD_BYTES + 1))


def _no_upload(*_: Any, **__: Any) -> str:
    raise AssertionError("no upload expected")


def test_small_files_go_inline_and_text_is_dropped() -> None:
    parts = [text_part("hi"), {**file_part(b"abc", file_name="a.txt"), "text": "dropped"}]
    wire, session = encode_request_parts(parts, inline_limit=16384, upload=_no_upload)
    assert session is None
    assert wire[0] == {"partId": "text", "text": "hi"}
    ref = wire[1]["artifactRef"]
    assert "text" not in wire[1] and "file" not in wire[1]
    assert ref["kind"] == "inline" and base64.b64decode(ref["data"]) == b"abc"
    assert ref["fileName"] == "a.txt" and ref["mimeType"] == "application/octet-stream"


def test_large_files_are_uploaded_and_the_part_keeps_id_and_type() -> None:
    calls: list[dict[str, Any]] = []

    def upload(data: bytes, **kw: Any) -> str:
        calls.append({"size": len(data), **kw})
        return "us_1"

    parts = [file_part(bytes(20), file_name="x.bin", content_type="image/png", part_id="img")]
    wire, session = encode_request_parts(parts, inline_limit=10, upload=upload)
    assert session == "us_1"
    assert wire == [{"partId": "img", "contentType": "image/png"}]
    assert calls == [{"size": 20, "file_name": "x.bin", "mime_type": "image/png", "part_id": "img"}]


def test_bad_parts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="list of parts"):
        encode_request_parts("hello", inline_limit=1, upload=_no_upload)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be a dict"):
        encode_request_parts(["hello"], inline_limit=1, upload=_no_upload)
    with pytest.raises(ConfigError, match="no partId"):
        encode_request_parts([{"file": b"x"}], inline_limit=1, upload=_no_upload)


def test_raw_dict_parts_pass_through() -> None:
    wire, _ = encode_request_parts(
        [{"partId": "q", "a": 1, "b": 2, "fileName": "ignored"}], inline_limit=1, upload=_no_upload
    )
    assert wire == [{"partId": "q", "a": 1, "b": 2}]
