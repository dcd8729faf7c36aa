"""``multipart/form-data`` bodies (RFC 7578) for presigned POST uploads: encoding only, no I/O.

Every body gets a fresh random boundary, as urllib3 and requests do, and a boundary that
occurs in the content is drawn again: a parser ends a part at the first
``CRLF--boundary`` it sees, so a fixed boundary cut any file that happened to contain it
(and the storage service stored the cut file without complaint).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

__all__ = ["FORM_FILE_FIELD", "encode_form_data", "new_boundary"]

#: The part that carries the file in a presigned POST (S3's name; protocol.md §5.6).
FORM_FILE_FIELD = "file"
#: A drawn boundary that occurs in the content is drawn again at most this often.
_MAX_DRAWS = 8


def new_boundary() -> str:
    """A random boundary: 32 hex digits (128 bits), so it occurs in no real content."""
    return secrets.token_hex(16)


def _quote(value: str) -> str:
    # WHATWG's form encoding: the three characters that could end a quoted header value.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode_form_data(
    fields: Sequence[tuple[str, str]],
    *,
    file_name: str,
    content_type: str,
    data: bytes,
    draw: Callable[[], str] = new_boundary,
) -> tuple[bytes, str]:
    """``(body, Content-Type header)``: the ``fields`` in order, then the ``file`` part.

    ``draw`` returns candidate boundaries (tests pass their own); one occurring anywhere in
    the content is refused and another drawn. Raises ValueError if none fits.
    """
    values = [(name, value.encode("utf-8")) for name, value in fields]
    for _ in range(_MAX_DRAWS):
        boundary = draw()
        marker = boundary.encode("ascii")
        if marker not in data and not any(marker in value for _, value in values):
            break
    else:
        raise ValueError("no drawn multipart boundary is absent from the content")
    dash = b"--" + marker
    chunks: list[bytes] = []
    for name, value in values:
        chunks += [
            dash,
            f'\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode(),
            value,
            b"\r\n",
        ]
    chunks += [
        dash,
        (
            f'\r\nContent-Disposition: form-data; name="{FORM_FILE_FIELD}"; '
            f'filename="{_quote(file_name)}"\r\nContent-Type: {_quote(content_type)}\r\n\r\n'
        ).encode(),
        data,
        b"\r\n",
        dash,
        b"--\r\n",
    ]
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
