"""Raw HTTP/1.1 exchanges with a server on loopback, for the fast-path tests: requests
written byte for byte, answers read back Content-Length framed."""

from __future__ import annotations

import re
import socket
from typing import Protocol

WAIT_S = 10.0


class Listening(Protocol):
    @property
    def port(self) -> int: ...


def post(path: str, body: bytes, *extra: str, host: str | None = "x") -> bytes:
    """A POST with ``extra`` header lines (and a Host header unless ``host`` is None)."""
    head = [f"POST {path} HTTP/1.1", *_host(host), f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def get(path: str, *extra: str, host: str | None = "x") -> bytes:
    """A GET with ``extra`` header lines (and a Host header unless ``host`` is None)."""
    head = [f"GET {path} HTTP/1.1", *_host(host), *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def _host(host: str | None) -> list[str]:
    return [] if host is None else [f"Host: {host}"]


class RawClient:
    """A raw keep-alive connection reading whole responses (Content-Length framed)."""

    def __init__(self, server: Listening) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data


def normalised(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str, str]:
    status, headers, body = answer
    text = re.sub(r"1\d{16}", "<tt>", body.decode())
    return status, headers.get("content-type", ""), text


def exchange(server: Listening, requests: list[bytes]) -> list[tuple[int, str, str]]:
    client = RawClient(server)
    try:
        client.sock.sendall(b"".join(requests))  # pipelined in one write
        return [normalised(client.response()) for _ in requests]
    finally:
        client.close()
