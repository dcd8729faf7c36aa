"""The three token modes against a real local network, with refresh by TTL and on 401."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import (
    AuthError,
    AuthRefreshFailedError,
    TaskClient,
    TokenEndpointConfig,
    TokenResult,
    create_task_client,
    text_part,
)
from blocks_network.auth.consumer_auth import ConsumerAuth
from blocks_network.auth.token_sources import ProviderTokenSource
from blocks_network.config import read_env, resolve_client_config
from blocks_network.protocol.constants import API_PATH_CONSUMER_TOKEN
from blocks_network.transport.http_client import HttpClient
from tests.sdk.consumer.conftest import start_network
from tests.sdk.consumer.responder import Responder
from tests.sdk.stub_server import Recorded, StubServer, stub_server

WAIT = 10.0


def exchange(network: LocalNetwork, api_key: str | None = None) -> dict[str, Any]:
    """What a customer proxy does: trade the API key for a consumer JWT."""
    http = HttpClient()
    try:
        response = http.request(
            "POST",
            network.url + API_PATH_CONSUMER_TOKEN,
            json_body={"apiKey": api_key or network.api_key},
        )
    finally:
        http.close()
    assert response.status == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def echo_once(client: TaskClient, text: str = "ping") -> str:
    with client.send_message(agent_name="echo", request_parts=[text_part(text)]) as session:
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        return session.download_artifact(session.list_artifacts()[0]).data.decode()


@pytest.fixture
def proxy(network: LocalNetwork) -> Iterator[StubServer]:
    """A customer-owned token proxy answering ``{token, expiresIn, userId}``."""

    def respond(request: Recorded) -> tuple[int, Any]:
        body = exchange(network)
        return 200, {"token": body["accessToken"], "expiresIn": 3600, "userId": body["userId"]}

    with stub_server(respond) as server:
        yield server


def test_api_key_mode(
    make_client: Callable[..., TaskClient], agent: Responder, network: LocalNetwork
) -> None:
    client = make_client(api_key=network.api_key)
    assert client.get_user_id() == network.dev_identity.user_id
    assert echo_once(client) == "Echoed request: ping"


def test_token_endpoint_url_string(
    make_client: Callable[..., TaskClient], agent: Responder, proxy: StubServer
) -> None:
    client = make_client(token_endpoint=proxy.url + "/api/blocks-token")
    assert echo_once(client) == "Echoed request: ping"
    request = proxy.requests[0]
    assert request.method == "POST" and request.path == "/api/blocks-token"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {}
    assert "X-Write-Affinity" not in request.headers
    assert client.get_user_id() is not None


def test_token_endpoint_config_headers_and_body(
    make_client: Callable[..., TaskClient], agent: Responder, proxy: StubServer
) -> None:
    config: TokenEndpointConfig = {
        "url": proxy.url + "/api/blocks-token",
        "headers": {"X-CSRF-Token": "csrf-1", "Cookie": "session=abc123; role=user"},
        "body": {"sessionId": "s-42"},
    }
    client = make_client(token_endpoint=config)
    request = proxy.requests[0]
    assert request.headers["X-CSRF-Token"] == "csrf-1"
    assert request.headers["Cookie"] == "session=abc123; role=user"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"sessionId": "s-42"}
    client._auth.refresh_after_rejection(client._auth.token)  # type: ignore[union-attr]
    # The same request for every refresh.
    assert proxy.requests[1].json() == {"sessionId": "s-42"}
    assert proxy.requests[1].headers["Cookie"] == "session=abc123; role=user"


def test_user_headers_win_over_the_default_content_type(
    make_client: Callable[..., TaskClient], proxy: StubServer
) -> None:
    make_client(token_endpoint={"url": proxy.url, "headers": {"content-type": "text/json"}})
    assert proxy.requests[0].headers["Content-Type"] == "text/json"


def test_create_task_client_accepts_the_config_form(
    blocks_env: dict[str, str], agent: Responder, proxy: StubServer
) -> None:
    client = create_task_client(
        env="playground",
        token_endpoint={"url": proxy.url, "headers": {"Cookie": "session=xyz"}},
    )
    try:
        assert client.billing_mode == "free"
        assert echo_once(client) == "Echoed request: ping"
        assert proxy.requests[0].headers["Cookie"] == "session=xyz"
    finally:
        client.destroy()


def test_token_provider_mode(
    make_client: Callable[..., TaskClient], agent: Responder, network: LocalNetwork
) -> None:
    def get_token() -> TokenResult:
        data = exchange(network)
        return TokenResult(token=data["accessToken"], expires_in=3600, user_id=data["userId"])

    client = make_client(token_provider=get_token)
    assert client.get_user_id() == network.dev_identity.user_id
    assert echo_once(client) == "Echoed request: ping"


def test_proactive_refresh_by_ttl(
    make_client: Callable[..., TaskClient],
    agent: Responder,
    network: LocalNetwork,
    proxy: StubServer,
) -> None:
    tokens: list[str] = []
    refreshed = threading.Event()

    def get_token() -> TokenResult:
        data = exchange(network)
        tokens.append(data["accessToken"])
        if len(tokens) >= 3:
            refreshed.set()
        return TokenResult(data["accessToken"], 1.0, data["userId"])  # refresh after 1 s

    client = make_client(token_provider=get_token)
    assert refreshed.wait(WAIT)
    assert len(set(tokens)) == len(tokens)
    assert echo_once(client) == "Echoed request: ping"


def test_token_endpoint_refreshes_by_ttl(
    make_client: Callable[..., TaskClient], network: LocalNetwork
) -> None:
    def respond(request: Recorded) -> tuple[int, Any]:
        body = exchange(network)
        return 200, {"token": body["accessToken"], "expiresIn": 1, "userId": body["userId"]}

    with stub_server(respond) as server:
        make_client(token_endpoint={"url": server.url, "body": {"k": 1}})
        server.wait_requests(3)
        assert all(r.json() == {"k": 1} for r in server.requests)


def test_api_key_mode_refreshes_with_the_rotating_refresh_token(
    tmp_path: Path, agent: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = start_network(tmp_path / "short", access_token_ttl_seconds=1)
    try:
        client = TaskClient.create("free", api_key=net.api_key, cdm_url=net.cdm_url)
        try:
            source = client._auth._source  # type: ignore[union-attr]
            first_refresh = source._refresh_token
            deadline = time.monotonic() + WAIT
            while source._refresh_token == first_refresh and time.monotonic() < deadline:
                time.sleep(0.05)
            assert source._refresh_token != first_refresh  # rotated by /agent/refresh
        finally:
            client.destroy()
    finally:
        net.stop()


def test_refresh_on_401_with_a_refused_token(
    make_client: Callable[..., TaskClient], agent: Responder, network: LocalNetwork
) -> None:
    calls: list[int] = []

    def get_token() -> TokenResult:
        calls.append(1)
        if len(calls) == 1:
            return TokenResult("not-a-jwt", 3600, network.dev_identity.user_id)
        data = exchange(network)
        return TokenResult(data["accessToken"], 3600, data["userId"])

    client = make_client(token_provider=get_token)
    assert echo_once(client) == "Echoed request: ping"  # 401 → one refresh → retry
    assert len(calls) == 2


def test_refresh_on_401_after_the_network_expired_the_token(
    tmp_path: Path, blocks_env: dict[str, str]
) -> None:
    net = start_network(tmp_path / "expiring", access_token_ttl_seconds=1)
    responder = Responder(net, "echo")
    calls: list[float] = []

    def get_token() -> TokenResult:
        calls.append(time.monotonic())
        data = exchange(net)
        # Claims an hour: only the backend's 401 reveals the 1 s expiry.
        return TokenResult(data["accessToken"], 3600, data["userId"])

    try:
        client = TaskClient.create("free", token_provider=get_token, cdm_url=net.cdm_url)
        try:
            time.sleep(2.1)  # the network's JWTs live 1 s (exp is in whole seconds)
            assert echo_once(client) == "Echoed request: ping"
            assert len(calls) == 2
        finally:
            client.destroy()
    finally:
        responder.stop()
        net.stop()


def test_three_failures_fire_on_auth_error_and_the_stale_token_still_works(
    network: LocalNetwork, agent: Responder
) -> None:
    errors: list[AuthRefreshFailedError] = []
    reported = threading.Event()
    calls: list[int] = []

    def get_token() -> TokenResult:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("auth server down")
        data = exchange(network)
        return TokenResult(data["accessToken"], 1.0, data["userId"])

    def on_auth_error(err: AuthRefreshFailedError) -> None:
        errors.append(err)
        reported.set()

    http = HttpClient()
    config = resolve_client_config("free", http=http, env=read_env({}), cdm_url=network.cdm_url)
    # Same policy as TaskClient.create, minus the 5 s and 10 s waits between attempts.
    auth = ConsumerAuth(
        ProviderTokenSource(get_token), on_auth_error=on_auth_error, retry_sleep=lambda s: None
    )
    auth.start()
    client = TaskClient(config, auth, http=http)
    try:
        assert reported.wait(WAIT)
        assert len(calls) == 4 and len(errors) == 1
        assert "auth server down" in str(errors[0])
        stale = auth.token
        # The stale JWT is still valid on the network (1 h): it keeps working.
        assert echo_once(client) == "Echoed request: ping"
        assert auth.token == stale
    finally:
        client.destroy()


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        (500, {"error": "boom"}, "HTTP 500"),
        (200, b"<html>not json</html>", "must answer JSON"),
        (200, {"accessToken": "x"}, "must answer JSON"),
        (401, {"error": "no session"}, "no session"),
    ],
)
def test_token_endpoint_failures_are_auth_errors(
    blocks_env: dict[str, str], status: int, body: object, match: str
) -> None:
    with stub_server(lambda r: (status, body)) as server, pytest.raises(AuthError, match=match):
        TaskClient.create("free", token_endpoint=server.url)


def test_token_provider_that_raises_is_an_auth_error(blocks_env: dict[str, str]) -> None:
    def broken() -> TokenResult:
        raise ValueError("no credentials here")

    with pytest.raises(AuthError, match="no credentials here"):
        TaskClient.create("free", token_provider=broken)
    with pytest.raises(AuthError, match="must return TokenResult"):
        TaskClient.create("free", token_provider=lambda: "just-a-string")  # type: ignore[arg-type,return-value]
