"""The SDK's TLS context: SSL_CERT_FILE / SSL_CERT_DIR or the system store."""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path

import pytest

from blocks_devnet.local_ca import TlsFiles, ensure_tls_files
from blocks_network.errors import CertificateError, ConfigError
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.retry import RetryPolicy
from blocks_network.transport.tls import client_ssl_context
from tests.support.tcp_server import AcceptLoop


def test_ssl_cert_file_replaces_the_system_store(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path)
    context = client_ssl_context({"SSL_CERT_FILE": str(files.ca_cert)})
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [
        c["subject"] for c in ssl.create_default_context(cafile=files.ca_cert).get_ca_certs()
    ]
    assert client_ssl_context({"SSL_CERT_FILE": str(files.ca_cert)}) is context  # shared
    system = client_ssl_context({})
    assert system is not context and system.check_hostname


def test_an_unloadable_ssl_cert_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SSL_CERT_FILE"):
        client_ssl_context({"SSL_CERT_FILE": str(tmp_path / "nothing-here.pem")})


class _TlsServer:
    """A TLS server on every IPv4 address with the local CA's certificate (issued for the
    loopback names only); answers each request with 200 ``{}``."""

    def __init__(self, files: TlsFiles) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(files.server_cert, files.server_key)
        self._loop = AcceptLoop(self._serve, host="0.0.0.0")
        self.port = self._loop.port

    def _serve(self, raw: socket.socket) -> None:
        with (
            raw,
            contextlib.suppress(OSError),
            self._context.wrap_socket(raw, server_side=True) as conn,
        ):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def close(self) -> None:
        self._loop.close()


def test_the_certificate_must_name_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = ensure_tls_files(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca_cert))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = _TlsServer(files)
    client = HttpClient(retry=RetryPolicy(attempts=1))
    try:
        assert client.request("GET", f"https://127.0.0.1:{server.port}/").status == 200
        # The same server and trusted CA, by an address its certificate does not carry.
        with pytest.raises(CertificateError, match=r"127\.0\.0\.2"):
            client.request("GET", f"https://127.0.0.2:{server.port}/")
    finally:
        client.close()
        server.close()
