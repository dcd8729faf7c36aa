"""multipart/form-data encoding: a fresh boundary per body that never occurs in the content."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from blocks_network.transport.form_data import encode_form_data
from blocks_network.transport.presigned_post import form_fields

FIELDS = [("key", "f1/in.bin"), ("Content-Type", "application/octet-stream")]


def boundary_of(content_type: str) -> str:
    match = re.fullmatch(r"multipart/form-data; boundary=([0-9a-f]{32})", content_type)
    assert match, content_type
    return match.group(1)


def split_parts(body: bytes, boundary: str) -> list[tuple[bytes, bytes]]:
    """(headers, content) of each part, cut at every ``CRLF--boundary`` as RFC 2046 says."""
    dash = b"--" + boundary.encode()
    assert body.startswith(dash + b"\r\n") and body.endswith(b"\r\n" + dash + b"--\r\n")
    inner = body[len(dash) + 2 : -(len(dash) + 6)]
    parts = []
    for raw in inner.split(b"\r\n" + dash + b"\r\n"):
        headers, _, content = raw.partition(b"\r\n\r\n")
        parts.append((headers, content))
    return parts


def tricky_bytes(rng: random.Random, size: int) -> bytes:
    lines = [b"\r\n--", b"--\r\n", b"\r\n------BlocksUploadBoundary", b"\r\n\r\n", b"\x00"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(lines) if rng.random() < 0.3 else rng.randbytes(rng.randrange(1, 64))
    return bytes(out[:size])


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_keeps_fields_in_order_and_the_file_byte_exact(seed: int) -> None:
    rng = random.Random(seed)
    data = tricky_bytes(rng, rng.randrange(0, 5000))
    body, content_type = encode_form_data(
        FIELDS, file_name="in.bin", content_type="application/x-test", data=data
    )
    parts = split_parts(body, boundary_of(content_type))
    assert [content for _, content in parts] == [b"f1/in.bin", b"application/octet-stream", data]
    assert parts[0][0] == b'Content-Disposition: form-data; name="key"'
    assert parts[2][0] == (
        b'Content-Disposition: form-data; name="file"; filename="in.bin"\r\n'
        b"Content-Type: application/x-test"
    )


def test_every_body_gets_its_own_boundary() -> None:
    boundaries = {
        boundary_of(encode_form_data(FIELDS, file_name="a", content_type="x/y", data=b"same")[1])
        for _ in range(50)
    }
    assert len(boundaries) == 50


def test_a_boundary_found_in_the_content_is_drawn_again() -> None:
    taken, free = "a" * 32, "b" * 32
    draws: Iterator[str] = iter([taken, taken, free])
    data = b"\r\n--" + taken.encode() + b"\r\n"
    body, content_type = encode_form_data(
        [], file_name="f", content_type="x/y", data=data, draw=lambda: next(draws)
    )
    assert boundary_of(content_type) == free
    assert split_parts(body, free)[0][1] == data


def test_a_boundary_found_in_a_field_is_drawn_again() -> None:
    draws = iter(["c" * 32, "d" * 32])
    _, content_type = encode_form_data(
        [("policy", "c" * 32)],
        file_name="f",
        content_type="x/y",
        data=b"",
        draw=lambda: next(draws),
    )
    assert boundary_of(content_type) == "d" * 32


def test_no_fitting_boundary_is_an_error_not_a_corrupt_body() -> None:
    with pytest.raises(ValueError, match="boundary"):
        encode_form_data(
            [], file_name="f", content_type="x/y", data=b"e" * 32, draw=lambda: "e" * 32
        )


def test_header_values_cannot_break_out_of_their_quotes() -> None:
    body, content_type = encode_form_data(
        [('na"me\r\nX: y', "v")], file_name='a"b\r\n.bin', content_type="x/y\r\nX: z", data=b"D"
    )
    headers = [h for h, _ in split_parts(body, boundary_of(content_type))]
    assert headers[0] == b'Content-Disposition: form-data; name="na%22me%0D%0AX: y"'
    assert headers[1] == (
        b'Content-Disposition: form-data; name="file"; filename="a%22b%0D%0A.bin"\r\n'
        b"Content-Type: x/y%0D%0AX: z"
    )


def test_form_fields_accept_the_wire_shapes() -> None:
    assert form_fields([{"key": "a", "value": "1"}, {"name": "b", "value": 2}, {"x": 1}, 3]) == [
        ("a", "1"),
        ("b", "2"),
    ]
    assert form_fields({"a": "1"}) == [("a", "1")]
    assert form_fields(None) == [] and form_fields("junk") == []
