"""The SDK's TLS context: SSL_CERT_FILE / SSL_CERT_DIR or the system store."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from blocks_devnet.local_ca import ensure_tls_files
from blocks_network.errors import ConfigError
from blocks_network.transport.tls import client_ssl_context


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
