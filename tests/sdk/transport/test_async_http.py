"""AsyncHttpClient (aiohttp) answers, retries, trusts and routes as the sync HttpClient does.

Async tests run on anyio's pytest plugin (installed with httpx), on asyncio only: the SDK's
async API is asyncio's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from blocks_devnet.local_ca import ensure_tls_files
from blocks_network.errors import CertificateError, ClosedError, NetworkError, ProxyError
from blocks_network.transport.async_http import AsyncHttpClient
from blocks_network.transport.retry import RetryPolicy
from tests.sdk.stub_server import Recorded, stub_server
from tests.support.recording_proxy import RecordingProxy

pytestmark = pytest.mark.anyio

WAIT = 10.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
_FAST = RetryPolicy(attempts=3, base_s=0.01, cap_s=0.01)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _dead_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # nobody listens once closed


async def test_json_round_trip_returns_every_status() -> None:
    def respond(request: Recorded) -> tuple[int, Any]:
        return (404, {"error": "no"}) if request.path == "/missing" else (200, {"ok": True})

    with stub_server(respond) as server:
        async with AsyncHttpClient() as client:
            answer = await client.request(
                "POST", f"{server.url}/rpc", json_body={"a": 1}, headers={"X-Extra": "1"}
            )
            missing = await client.request("GET", f"{server.url}/missing")
    assert answer.status == 200 and answer.json() == {"ok": True}
    assert answer.headers["content-type"].startswith("application/json")
    assert missing.status == 404 and missing.json() == {"error": "no"}
    sent = server.requests[0]
    assert sent.body == b'{"a":1}' and sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Extra"] == "1" and sent.headers["User-Agent"] == "blocks-network-python"


async def test_an_unreachable_server_is_retried_then_a_network_error() -> None:
    async with AsyncHttpClient(retry=_FAST) as client:
        with pytest.raises(NetworkError, match="could not reach"):
            await client.request("GET", f"{_dead_url()}/x")


async def test_aclose_ends_a_retry_back_off_at_once() -> None:
    client = AsyncHttpClient(retry=RetryPolicy(attempts=5, base_s=60.0, cap_s=60.0))
    call = asyncio.ensure_future(client.request("GET", f"{_dead_url()}/x"))
    await asyncio.sleep(0.3)  # the first try fails at once on loopback; the back-off began
    started = time.monotonic()
    await client.aclose()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(call, WAIT)
    assert time.monotonic() - started < WAIT
    with pytest.raises(ClosedError):
        await client.request("GET", f"{_dead_url()}/x")


@pytest.fixture
async def tls_url(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    files = ensure_tls_files(tmp_path / "ca")
    app = web.Application()

    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"tls": True})

    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=files.server_context())
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}", files.ca_cert
    await runner.cleanup()


async def test_tls_trusts_ssl_cert_file_and_an_untrusted_certificate_is_not_retried(
    tls_url: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_cert = tls_url
    async with AsyncHttpClient(retry=RetryPolicy(attempts=3, base_s=60.0)) as client:
        started = time.monotonic()
        with pytest.raises(CertificateError, match="SSL_CERT_FILE"):
            await client.request("GET", f"{url}/hello")
        assert time.monotonic() - started < WAIT  # no 60 s back-off: not retried
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_cert))
        answer = await client.request("GET", f"{url}/hello")
    assert answer.status == 200 and answer.json() == {"tls": True}


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[RecordingProxy]:
    started = RecordingProxy(tmp_path)
    yield started
    started.stop()


async def test_requests_take_the_environments_proxy_by_httpx_rules(
    proxy: RecordingProxy,
    tls_url: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, ca_cert = tls_url
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_cert))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)  # lower case counts too
    with stub_server(lambda r: (200, {"plain": True})) as server:
        async with AsyncHttpClient() as client:
            assert (await client.request("GET", f"{url}/hello")).json() == {"tls": True}
            assert (await client.request("GET", f"{server.url}/p")).json() == {"plain": True}
            tls_port = url.rsplit(":", 1)[1]
            plain_port = server.url.rsplit(":", 1)[1]
            recorded = proxy.requests()
            # HTTPS through a CONNECT tunnel, HTTP in absolute form.
            assert any(r.startswith("CONNECT") and tls_port in r for r in recorded), recorded
            assert any(r.startswith("GET") and plain_port in r for r in recorded), recorded
            # NO_PROXY "host:port" bypasses only that port (httpx's rule, not urllib's).
            monkeypatch.setenv("NO_PROXY", f"127.0.0.1:{plain_port}")
            before = len(proxy.requests())
            assert (await client.request("GET", f"{server.url}/direct")).status == 200
            assert len(proxy.requests()) == before


async def test_an_unreachable_proxy_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", _dead_url())
    with stub_server() as server:
        async with AsyncHttpClient(retry=_FAST) as client:
            with pytest.raises(NetworkError, match="cannot reach the proxy") as caught:
                await client.request("GET", f"{server.url}/x")
    assert isinstance(caught.value.__cause__, ProxyError)


async def test_routes_are_read_once_per_origin_until_a_variable_changes(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks_network.transport import async_http

    looked_up: list[str] = []
    real_proxy_for = async_http.proxy_for

    def counting_proxy_for(scheme: str, host: str, port: int) -> Any:
        looked_up.append(f"{host}:{port}")
        return real_proxy_for(scheme, host, port)

    monkeypatch.setattr(async_http, "proxy_for", counting_proxy_for)
    with stub_server(lambda r: (200, {"ok": True})) as server:
        async with AsyncHttpClient() as client:
            for _ in range(3):
                assert (await client.request("GET", f"{server.url}/a")).status == 200
            assert len(looked_up) == 1 and proxy.requests() == []
            # A proxy variable set while the client runs takes effect on the next request.
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            assert (await client.request("GET", f"{server.url}/b")).status == 200
            assert len(looked_up) == 2
            assert any(r.startswith("GET") and "/b" in r for r in proxy.requests())
