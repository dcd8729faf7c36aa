"""A tiny scripted HTTP server for SDK tests (token endpoints, CDM documents, dead ports)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    #: Case-insensitive, as HTTP headers are.
    headers: Message
    body: bytes
    #: The client's (host, port): one per connection.
    client: tuple[str, int] = ("", 0)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


#: ``respond(request) -> (status, body)``; a dict/list body is sent as JSON; status
#: :data:`DROP` closes the connection without an answer.
Responder = Callable[[Recorded], tuple[int, Any]]


DROP = 0


@dataclass
class StubServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    responder: Responder = lambda _r: (404, {"error": "not scripted"})
    called: threading.Condition = field(default_factory=threading.Condition)

    def wait_requests(self, n: int, timeout: float = 10.0) -> None:
        with self.called:
            assert self.called.wait_for(lambda: len(self.requests) >= n, timeout), (
                f"only {len(self.requests)} requests"
            )


@contextmanager
def stub_server(
    responder: Responder | None = None, *, keep_alive: bool = False
) -> Iterator[StubServer]:
    """Serve on 127.0.0.1 (ephemeral port) until the block ends; HTTP/1.0 (a connection per
    request) unless ``keep_alive`` (HTTP/1.1: requests, pipelined ones too, are answered in
    order on one connection)."""
    state = StubServer(url="")
    if responder is not None:
        state.responder = responder

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            rec = Recorded(self.command, self.path, self.headers, body, self.client_address)
            with state.called:
                state.requests.append(rec)
                state.called.notify_all()
            status, body = state.responder(rec)
            if status == DROP:
                self.close_connection = True
                return
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="stub-http", daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dead_url() -> str:
    """An http URL on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
