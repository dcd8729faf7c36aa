"""The local CA of ``blocks devnet --tls``: created once, reused, server cert renewed."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509

from blocks_devnet.local_ca import ensure_tls_files


def _names(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def test_ca_is_created_once_and_the_server_cert_follows_the_hosts(tmp_path: Path) -> None:
    first = ensure_tls_files(tmp_path, ["127.0.0.1"])
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    assert _names(first.server_cert) == {"localhost", "127.0.0.1", "::1"}
    assert (first.server_key.stat().st_mode & 0o077) == 0  # the key is owner-only

    again = ensure_tls_files(tmp_path, ["0.0.0.0"])  # a wildcard adds no name
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == (ca, server)

    lan = ensure_tls_files(tmp_path, ["192.168.1.20"])
    assert lan.ca_cert.read_bytes() == ca
    assert _names(lan.server_cert) == {"localhost", "127.0.0.1", "::1", "192.168.1.20"}

    # The served chain verifies with only the CA, hostname checks on.
    client = ssl.create_default_context(cafile=lan.ca_cert)
    for name in ("localhost", "127.0.0.1", "::1", "192.168.1.20"):
        _handshake(client, lan.server_context(), name)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(client, lan.server_context(), "example.com")


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    """A whole TLS handshake in memory; raises what the client's verification raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(10):
        for i, (end, out, peer_in) in enumerate(((c, c_out, s_in), (s, s_out, c_in))):
            if not done[i]:
                try:
                    end.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done):
            return
    raise AssertionError("the handshake did not finish")
