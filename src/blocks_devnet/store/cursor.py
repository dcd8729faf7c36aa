"""Opaque paging cursors ``(created_ms, id)`` shared by every listing that pages by time.

A cursor is base64url JSON ``[created_ms, id]``. It comes back from the client, so decoding
treats it as untrusted input: anything this module did not produce, including a number
SQLite cannot hold or text it cannot store, is an :class:`InvalidCursor`.
"""

from __future__ import annotations

import base64
import binascii
import json

from blocks_devnet.json_input import parse_json

#: SQLite integers are signed 64-bit.
_MAX_SQLITE_INTEGER = 2**63 - 1


class InvalidCursor(ValueError):
    """A cursor this server did not hand out."""


def encode_cursor(created_ms: int, key: str) -> str:
    """The cursor of the page that follows the row ``(created_ms, key)``."""
    raw = json.dumps([created_ms, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, what: str = "cursor") -> tuple[int, str]:
    """``(created_ms, key)`` of a cursor :func:`encode_cursor` made.

    Raises :class:`InvalidCursor` (its message names ``what``, the parameter the client
    sent) for anything else.
    """
    invalid = InvalidCursor(f"Invalid {what}: pass the 'next' value of the previous page unchanged")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_ms, key = parse_json(raw)
    except (binascii.Error, ValueError, TypeError):
        raise invalid from None
    if (
        isinstance(created_ms, bool)
        or not isinstance(created_ms, int)
        or not -_MAX_SQLITE_INTEGER <= created_ms <= _MAX_SQLITE_INTEGER
        or not isinstance(key, str)
    ):
        raise invalid
    return created_ms, key
