"""Paging cursors: round trip, and every foreign cursor refused as InvalidCursor."""

from __future__ import annotations

import base64
import json

import pytest

from blocks_devnet.store.cursor import InvalidCursor, decode_cursor, encode_cursor


def b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def test_round_trip() -> None:
    cursor = encode_cursor(1_700_000_000_000, "t_abc")
    assert decode_cursor(cursor) == (1_700_000_000_000, "t_abc")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "!!!",
        "é",
        b64(json.dumps([10**30, "a"]).encode()),  # SQLite integers are 64-bit
        b64(json.dumps([-(10**30), "a"]).encode()),
        b64(b'[1, "\\ud800"]'),  # SQLite cannot store a lone surrogate
        b64(b"[" * 5000),
        b64(json.dumps([True, "a"]).encode()),
        b64(json.dumps([1, 2]).encode()),
        b64(json.dumps({"a": 1, "b": 2}).encode()),
        b64(json.dumps("ab").encode()),
        b64(b"7"),
    ],
)
def test_foreign_cursors_are_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor, match="Invalid next"):
        decode_cursor(cursor, "next")
