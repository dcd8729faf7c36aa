"""The three ways a consumer gets its tokens, and a tiny token-endpoint proxy.

    python examples/auth-consumer/consumer.py

1. ``api_key``: the SDK exchanges the key for short-lived tokens (servers, scripts).
2. ``token_endpoint``: the SDK POSTs to *your* endpoint, which holds the API key, checks
   who is calling (here: a session cookie) and answers ``{token, expiresIn, userId}``. The
   API key never reaches the client. :class:`TokenProxy` is such an endpoint.
3. ``token_provider``: any function returning a ``TokenResult`` (OAuth2, SSO, ...).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from blocks_network import AuthError, TaskClient, TokenEndpointConfig, TokenResult, text_part

SESSION_COOKIE = "session=demo-user-session"
TIMEOUT_S = 30.0


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def backend_url(cdm_url: str) -> str:
    """The Blocks backend's base URL, from the network's config document."""
    with urllib.request.urlopen(cdm_url, timeout=10) as response:
        return str(json.loads(response.read())["api"]["baseUrl"]).rstrip("/")


class TokenProxy:
    """A customer-owned token endpoint: ``POST /api/blocks-token`` with a valid session cookie
    → a Blocks consumer token for the proxy's API key. Runs on a thread; use as a context
    manager."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.calls = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/api/blocks-token":
                    self.send_error(404)
                    return
                if SESSION_COOKIE not in (self.headers.get("Cookie") or ""):
                    self.send_error(401, "sign in first")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)  # the SDK's body ({} or the configured one)
                exchange = _post_json(
                    f"{base_url}/api/v1/auth/agent/consumer-token", {"apiKey": api_key}
                )
                proxy.calls += 1
                answer = {
                    "token": exchange["accessToken"],
                    "expiresIn": exchange.get("expiresIn", 60),
                    "userId": exchange.get("userId"),
                }
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: no access log on stderr."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/blocks-token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-proxy", daemon=True
        )

    def __enter__(self) -> TokenProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def echo_once(client: TaskClient, text: str) -> str:
    with client.send_message("echo", [text_part(text)]) as session:
        session.wait_for_terminal(timeout=TIMEOUT_S)
        return session.download_artifact(session.list_artifacts()[0]).data.decode()


def run(cdm_url: str, api_key: str) -> dict[str, Any]:
    """Send one echo task with each token mode; returns the answers and the user ids."""
    results: dict[str, Any] = {}
    with TaskClient.create(billing_mode="free", api_key=api_key, cdm_url=cdm_url) as client:
        results["api_key"] = (echo_once(client, "mode 1: api key"), client.get_user_id())

    with TokenProxy(backend_url(cdm_url), api_key) as proxy:
        config: TokenEndpointConfig = {
            "url": proxy.url,
            "headers": {"Cookie": SESSION_COOKIE},
            "body": {"purpose": "auth-consumer example"},
        }
        with TaskClient.create(
            billing_mode="free", token_endpoint=config, cdm_url=cdm_url
        ) as client:
            results["token_endpoint"] = (
                echo_once(client, "mode 2: token endpoint"),
                client.get_user_id(),
            )

        def provider() -> TokenResult:
            answer = _post_json(proxy.url, {}, {"Cookie": SESSION_COOKIE})
            return TokenResult(
                token=answer["token"], expires_in=answer["expiresIn"], user_id=answer["userId"]
            )

        with TaskClient.create(
            billing_mode="free", token_provider=provider, cdm_url=cdm_url
        ) as client:
            results["token_provider"] = (
                echo_once(client, "mode 3: token provider"),
                client.get_user_id(),
            )

        try:  # without the session cookie the proxy refuses, and so does create()
            TaskClient.create(
                billing_mode="free", token_endpoint=proxy.url, cdm_url=cdm_url
            ).destroy()
            results["no_cookie"] = "accepted"
        except AuthError as exc:  # the endpoint answered 401
            results["no_cookie"] = type(exc).__name__
        results["proxy_calls"] = proxy.calls
    return results


def main(argv: list[str] | None = None) -> int:
    results = run(os.environ["BLOCKS_CDM_URL"], os.environ["BLOCKS_API_KEY"])
    for mode, value in results.items():
        print(f"{mode:>15}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
