"""Proxy choice (httpx's rules, checked against httpx itself) and the CONNECT tunnel."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from blocks_network.errors import ConfigError, ProxyError
from blocks_network.transport.proxies import Proxy, open_tunnel, proxy_for

PROXY = "http://proxy.corp:3128"


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("", "https://api.example.com", False),
        ("*", "https://api.example.com", True),
        ("example.com", "https://api.example.com", True),
        ("example.com", "https://example.com", True),
        ("example.com", "https://badexample.com", False),
        (".example.com", "https://example.com", False),
        (".example.com", "https://api.example.com", True),
        ("127.0.0.1", "http://127.0.0.1:4280", True),
        ("127.0.0.1", "http://127.0.0.2:4280", False),
        ("localhost", "http://localhost:4280", True),
        ("localhost", "http://127.0.0.1:4280", False),  # loopback is not bypassed by itself
        ("::1", "http://[::1]:4280", True),
        ("example.com:8443", "https://example.com:8443", True),
        ("example.com:8443", "https://example.com", False),
        ("http://example.com", "http://example.com", True),
        ("http://example.com", "https://example.com", False),
        ("other.org, example.com", "https://example.com", True),
        ("EXAMPLE.com", "https://Example.COM", True),
    ],
)
def test_no_proxy_matches_httpx(no_proxy: str, url: str, bypassed: bool) -> None:
    target = httpx.URL(url)
    assert target.port is not None or target.scheme in ("http", "https")
    port = target.port or (443 if target.scheme == "https" else 80)
    table = {"http": PROXY, "https": PROXY, "no": no_proxy}
    ours = proxy_for(target.scheme, target.host, port, table)
    assert (ours is None) == bypassed
    assert _httpx_bypasses(table, url) == bypassed


def _httpx_bypasses(table: dict[str, str], url: str) -> bool:
    # httpx reads the same mapping through urllib.request.getproxies().
    import unittest.mock

    with unittest.mock.patch("httpx._utils.getproxies", return_value=table):
        client = httpx.Client()
    try:
        transport = client._transport_for_url(httpx.URL(url))
        return transport is client._transport
    finally:
        client.close()


def test_scheme_then_all_proxy_and_credentials() -> None:
    table = {"https": "user:p%40ss@secure:8080", "all": "http://fallback:3128"}
    assert proxy_for("https", "h", 443, table) == Proxy(
        "secure", 8080, "Proxy-Authorization: Basic dXNlcjpwQHNz\r\n"
    )
    assert proxy_for("http", "h", 80, table) == Proxy("fallback", 3128)
    assert proxy_for("http", "h", 80, {"https": PROXY}) is None
    assert proxy_for("https", "h", 443, {"https": "http://p"}) == Proxy("p", 80)


@pytest.mark.parametrize("url", ["socks5://p:1080", "https://p:3128", "http://:3128"])
def test_unsupported_proxies_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        proxy_for("https", "h", 443, {"https": url})


@pytest.fixture
def fake_proxy() -> Iterator[tuple[int, list[bytes], list[bytes]]]:
    """A one-connection server answering CONNECT with the next queued answer."""
    server = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes] = []
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            seen.append(data)
            conn.sendall(answers.pop(0))
            conn.recv(4096)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], answers, seen
    server.close()
    thread.join(5)


def test_tunnel_sends_connect_and_hands_over_the_socket(
    fake_proxy: tuple[int, list[bytes], list[bytes]],
) -> None:
    port, answers, seen = fake_proxy
    answers.append(b"HTTP/1.1 200 Connection established\r\n\r\n")
    sock = open_tunnel(
        Proxy("127.0.0.1", port, "Proxy-Authorization: Basic eA==\r\n"), "::1", 443, 5
    )
    sock.close()
    assert seen == [
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic eA==\r\n\r\n"
    ]


def test_tunnel_refused_is_a_proxy_error(fake_proxy: tuple[int, list[bytes], list[bytes]]) -> None:
    port, answers, _ = fake_proxy
    answers.append(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ProxyError, match="407 Proxy Authentication Required") as caught:
        open_tunnel(Proxy("127.0.0.1", port), "example.com", 443, 5)
    assert caught.value.status == 407
    assert "credentials in HTTPS_PROXY" in str(caught.value)


def test_an_unreachable_proxy_is_named() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(ProxyError, match=f"cannot reach the proxy http://127.0.0.1:{port}"):
            open_tunnel(Proxy("127.0.0.1", port), "example.com", 443, 5)
