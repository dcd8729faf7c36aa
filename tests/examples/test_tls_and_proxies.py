"""The samples over HTTPS and through a real HTTP proxy (``proxy.py``), end to end.

A local network with ``tls=True`` (its own CA, trusted through ``SSL_CERT_FILE``), agents
and consumers of this process, and the official ``pubnub`` client the SDK configures:
every connection of theirs is recorded, so the tests see that all of them went through the
proxy (``CONNECT`` tunnels for HTTPS, absolute-form requests for HTTP), or none when
``NO_PROXY`` lists the host.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_network import CertificateError, TaskClient
from blocks_network.testing import AgentRunner, BlocksTestNetwork, artifact_texts, send_and_wait
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint, create_pubnub
from tests.support.recording_proxy import RecordingProxy

from .conftest import load, start_example

_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def tls_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlocksTestNetwork]:
    with BlocksTestNetwork.start(tmp_path_factory.mktemp("tls-network"), tls=True) as network:
        yield network


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.fixture
def trust_tls(tls_network: BlocksTestNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user exports from ``blocks devnet --tls``: SSL_CERT_FILE for the process."""
    monkeypatch.setenv("SSL_CERT_FILE", tls_network.env["SSL_CERT_FILE"])


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection this process opens (SDK, official client, agents)."""
    opened: list[tuple[str, int]] = []
    create = socket.create_connection

    def recording(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append((address[0], int(address[1])))
        return create(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    return opened


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    """A recording proxy the process's HTTPS_PROXY and http_proxy name."""
    started = RecordingProxy(tmp_path)
    try:
        monkeypatch.setenv("HTTPS_PROXY", started.url)
        monkeypatch.setenv("http_proxy", started.url)  # lower case counts too
        yield started
    finally:
        started.stop()


def _run_samples(network: BlocksTestNetwork, tmp_path: Path) -> None:
    """The seed's echo, file and stream samples: agents and a consumer of this process."""
    runner = AgentRunner(network)
    client = TaskClient.create("free", api_key=network.api_key, environ=network.env)
    try:
        start_example(runner, "echo")
        start_example(runner, "file-consumer")
        start_example(runner, "echo-stream")
        echoed = send_and_wait(client, "echo", "over the wire")
        assert artifact_texts(echoed) == ["Echoed request: over the wire"]

        source = tmp_path / "big.txt"
        data = b"a line of text\n" * 3000  # uploaded as a file both ways
        source.write_bytes(data)
        result = load("file-consumer", "consumer").run(client, source, tmp_path / "out")
        assert result["kinds"] == ["file", "inline"]
        assert result["report"]["sha256"] == hashlib.sha256(data).hexdigest()

        streamed = load("stream-consumer", "consumer").run(client, "echo_stream", "to be or not")
        assert b"".join(streamed["streams"]["_default"]) == b"to be or not"
        assert streamed["errors"] == []
    finally:
        client.destroy()
        runner.stop_all()


def _official_client_time(network: BlocksTestNetwork, *, tls: bool) -> None:
    """One request of the official client with its own (httpx) transport."""
    origin = network.url.split("://", 1)[1]
    keyset = network.network.keysets["playground"]
    pubnub = create_pubnub(
        subscribe_key=keyset.subscribe_key,
        publish_key=keyset.publish_key,
        user_id="proxy-test",
        endpoint=RealtimeEndpoint(origin, tls),
    )
    try:
        envelope = pubnub.time().sync()
        assert int(envelope.result) > 0
    finally:
        pubnub.stop()


def test_samples_over_tls(
    tls_network: BlocksTestNetwork,
    trust_tls: None,
    connections: list[tuple[str, int]],
    tmp_path: Path,
) -> None:
    _run_samples(tls_network, tmp_path)
    assert ("127.0.0.1", tls_network.network.port) in connections


def test_an_untrusted_certificate_is_a_clear_error_at_once(
    tls_network: BlocksTestNetwork, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(CertificateError) as caught:
        TaskClient.create("free", api_key=tls_network.api_key, environ=tls_network.env)
    port = tls_network.network.port
    assert f"127.0.0.1:{port}" in str(caught.value) and "SSL_CERT_FILE" in str(caught.value)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert connections == [("127.0.0.1", port)]  # one handshake: not retried
    pending = HttpClient().start("GET", tls_network.cdm_url)  # started requests raise on read
    with pytest.raises(CertificateError):
        pending.result()
    runner = AgentRunner(tls_network)
    try:
        with pytest.raises(CertificateError, match="SSL_CERT_FILE"):
            start_example(runner, "echo")  # the agent runtime's start-up says the same
    finally:
        runner.stop_all()


def test_tls_samples_and_the_official_client_through_one_proxy(
    tls_network: BlocksTestNetwork,
    trust_tls: None,
    proxy: RecordingProxy,
    connections: list[tuple[str, int]],
    tmp_path: Path,
) -> None:
    _run_samples(tls_network, tmp_path)
    tunnels = len(proxy.requests())
    _official_client_time(tls_network, tls=True)

    target = f"127.0.0.1:{tls_network.network.port}"
    requests = proxy.requests()
    assert requests and set(requests) == {f"CONNECT {target} "}
    assert len(requests) > tunnels  # the official client's own tunnel
    assert set(connections) == {("127.0.0.1", proxy.port)}  # nothing went around it


def test_plain_http_through_a_proxy_in_absolute_form(
    blocks_network: BlocksTestNetwork,
    proxy: RecordingProxy,
    connections: list[tuple[str, int]],
    tmp_path: Path,
) -> None:
    _run_samples(blocks_network, tmp_path)
    _official_client_time(blocks_network, tls=False)

    target = f"127.0.0.1:{blocks_network.network.port}"
    requests = proxy.requests()
    paths = [line.split(" ", 2)[2] for line in requests]
    assert all(line.split(" ")[1] == target for line in requests)
    assert "/config.json" in paths
    assert any(p.startswith("/time/0?") and "uuid=proxy-test" in p for p in paths)  # official
    assert any(path.startswith("/v2/subscribe/") for path in paths)
    assert any(path.startswith("/publish/") for path in paths)
    assert set(connections) == {("127.0.0.1", proxy.port)}


def test_no_proxy_bypasses_the_proxy(
    blocks_network: BlocksTestNetwork,
    proxy: RecordingProxy,
    connections: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
    runner = AgentRunner(blocks_network)
    client = TaskClient.create("free", api_key=blocks_network.api_key, environ=blocks_network.env)
    try:
        start_example(runner, "echo")
        assert send_and_wait(client, "echo", "direct").state == "completed"
        _official_client_time(blocks_network, tls=False)
    finally:
        client.destroy()
        runner.stop_all()
    assert proxy.requests() == []
    assert set(connections) == {("127.0.0.1", blocks_network.network.port)}
