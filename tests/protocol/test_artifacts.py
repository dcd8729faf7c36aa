"""ArtifactRef (protocol §7) and RequestPart (§3.1, §4.3)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from blocks_network.protocol import (
    FileArtifactRef,
    InlineArtifactRef,
    ProtocolError,
    RequestPart,
    parse_artifact_ref,
    parse_request_parts,
)


def test_inline_from_bytes_and_wire_shape() -> None:
    ref = InlineArtifactRef.from_bytes(b"Echoed request: hi", mime_type="text/plain")
    assert ref.to_wire() == {
        "kind": "inline",
        "mimeType": "text/plain",
        "size": 18,
        "data": base64.b64encode(b"Echoed request: hi").decode(),
    }
    assert ref.decode() == b"Echoed request: hi"
    hashed = InlineArtifactRef.from_bytes(b"x", file_name="x.bin", include_hash=True)
    assert hashed.mime_type == "application/octet-stream"
    assert hashed.hash is not None and hashed.hash.startswith("sha256:")
    assert hashed.to_wire()["fileName"] == "x.bin"


@pytest.mark.parametrize(
    "ref",
    [
        InlineArtifactRef(data="aGk=", size=2),
        InlineArtifactRef(data="", size=0, mime_type="a/b", file_name="f", hash="sha256:00"),
        FileArtifactRef(channel="u.o.t", file_id="fid", size=10),
        FileArtifactRef(
            channel="u.o.t",
            file_id="fid",
            size=10,
            mime_type="image/png",
            file_name="a.png",
            hash="sha256:ab",
            expires_at=1717000000000,
        ),
        FileArtifactRef(channel="c", file_id="f", size=1, expires_at="2026-05-01T00:00:00Z"),
    ],
)
def test_round_trip(ref: InlineArtifactRef | FileArtifactRef) -> None:
    assert parse_artifact_ref(ref.to_wire()) == ref


def test_mime_type_defaults_and_extra_keys_are_ignored() -> None:
    ref = parse_artifact_ref({"kind": "inline", "size": 2, "data": "aGk=", "fileUrl": "x"})
    assert ref == InlineArtifactRef(data="aGk=", size=2)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("nope", "expected a JSON object"),
        ({"size": 1, "data": ""}, "kind: missing"),
        ({"kind": "url", "size": 1}, "must be 'inline' or 'file'"),
        ({"kind": "inline", "data": "aGk="}, "size: missing"),
        ({"kind": "inline", "size": True, "data": ""}, "size: expected an integer, got boolean"),
        ({"kind": "inline", "size": -1, "data": ""}, "size: must be ≥ 0"),
        ({"kind": "inline", "size": 1}, "data: missing"),
        ({"kind": "file", "size": 1, "fileId": "f"}, "channel: missing"),
        ({"kind": "file", "size": 1, "channel": "c"}, "fileId: missing"),
        (
            {"kind": "file", "size": 1, "channel": "c", "fileId": "f", "expiresAt": True},
            "expiresAt",
        ),
        ({"kind": "inline", "size": 1, "data": "", "mimeType": 5}, "mimeType: expected a string"),
    ],
)
def test_parse_errors(wire: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_artifact_ref(wire)


def test_decode_rejects_bad_base64() -> None:
    with pytest.raises(ProtocolError, match="base64"):
        InlineArtifactRef(data="!!!", size=3).decode()


def test_request_part_keeps_extra_keys() -> None:
    wire = {"partId": "math", "a": 1, "b": 2, "kind": "math_add"}
    part = RequestPart.from_wire(wire)
    assert part.part_id == "math"
    assert part.extra == {"a": 1, "b": 2, "kind": "math_add"}
    assert part.to_wire() == wire


def test_request_part_round_trips_with_artifact() -> None:
    part = RequestPart(
        part_id="file",
        content_type="image/png",
        artifact_ref=InlineArtifactRef.from_bytes(b"\x89PNG", mime_type="image/png"),
    )
    assert RequestPart.from_wire(part.to_wire()) == part
    assert RequestPart.from_wire({"partId": "text", "text": "hi"}) == RequestPart("text", "hi")


def test_request_part_named_fields_win_over_extra() -> None:
    part = RequestPart(part_id="p", extra={"partId": "shadow", "x": 1})
    assert part.to_wire() == {"partId": "p", "x": 1}


def test_request_part_errors_name_the_index() -> None:
    with pytest.raises(ProtocolError, match=r"parts\[1\]\.text: expected a string"):
        parse_request_parts([{"text": "ok"}, {"text": 5}], "parts")
    with pytest.raises(ProtocolError, match=r"parts\[0\]\.artifactRef\.kind"):
        parse_request_parts([{"artifactRef": {"size": 1}}], "parts")
    with pytest.raises(ProtocolError, match="parts: expected an array, got object"):
        parse_request_parts({}, "parts")
