"""A simulated slow model API, on loopback, for the async-model-agent example.

    python examples/async-model-agent/model_server.py            # http://127.0.0.1:8765

``POST /v1/complete`` with ``{"prompt": "..."}`` answers after ``FIRST_TOKEN_DELAY_S`` with
one JSON line per token (``{"token": " word"}``), ``TOKEN_DELAY_S`` apart, like a streaming
completion endpoint: the agent spends almost all its time waiting on it. The answer is
``"You said: <prompt>"``, so tests know what to expect.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_PORT = 8765
FIRST_TOKEN_DELAY_S = 0.3
TOKEN_DELAY_S = 0.02


def answer_tokens(prompt: str) -> list[str]:
    """The tokens the model answers ``prompt`` with."""
    words = ["You", "said:", *prompt.split()]
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


class _Complete(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path != "/v1/complete":
            self.send_error(404, "POST /v1/complete")
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            prompt = str(json.loads(self.rfile.read(length))["prompt"])
        except (ValueError, KeyError, TypeError):
            self.send_error(400, 'send {"prompt": "..."}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()  # HTTP/1.0, no length: the body ends when the connection closes
        time.sleep(FIRST_TOKEN_DELAY_S)
        for token in answer_tokens(prompt):
            try:
                self.wfile.write(json.dumps({"token": token}).encode() + b"\n")
                self.wfile.flush()
            except OSError:
                return  # the agent hung up (its task was canceled)
            time.sleep(TOKEN_DELAY_S)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per request would drown the agent's log."""


def start(port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve on 127.0.0.1:``port`` (0: any free port) from a daemon thread; (server, URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Complete)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="model-server", daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PORT
    server, url = start(port)
    print(f"simulated model API on {url}/v1/complete (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
