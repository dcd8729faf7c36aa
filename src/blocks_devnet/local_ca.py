"""The local certificate authority of ``blocks devnet --tls``.

On first start the network creates a CA in ``<data dir>/tls/`` and a server certificate
signed by it for ``localhost``, ``127.0.0.1``, ``::1`` (and the bind address when it is a
specific one); later starts reuse both, so a client that trusts ``tls/ca.pem`` (its
``SSL_CERT_FILE``) keeps trusting the network. The server certificate is issued again when
it nears expiry, names other hosts, or was not signed by the CA on disk. Keys are P-256,
written owner-only.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - the optional extra is missing
    x509 = None  # type: ignore[assignment]

__all__ = ["LOOPBACK_NAMES", "TLS_DIR", "TlsFiles", "TlsUnavailableError", "ensure_tls_files"]

logger = logging.getLogger(__name__)

TLS_DIR: Final = "tls"
CA_CERT_FILE: Final = "ca.pem"
CA_KEY_FILE: Final = "ca-key.pem"
SERVER_CERT_FILE: Final = "server.pem"
SERVER_KEY_FILE: Final = "server-key.pem"
#: The names every server certificate carries.
LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "::1")
CA_VALIDITY: Final = datetime.timedelta(days=3650)
#: Under the 398 days clients such as browsers and macOS accept for a server certificate.
SERVER_VALIDITY: Final = datetime.timedelta(days=365)
#: A server certificate this close to expiry is issued again at start.
RENEW_BEFORE: Final = datetime.timedelta(days=30)
_WILDCARD_HOSTS: Final = ("", "0.0.0.0", "::")


class TlsUnavailableError(RuntimeError):
    """``cryptography`` is not installed (the ``devnet-tls`` extra)."""


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA certificate (what clients trust) and the server's pair are."""

    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context serving the certificate (TLS 1.2 or later)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def ensure_tls_files(directory: Path, hosts: Iterable[str] = ()) -> TlsFiles:
    """Create (first time) or reuse the CA and server certificate in ``directory``.

    ``hosts`` are names or addresses the certificate must carry besides
    :data:`LOOPBACK_NAMES` (wildcard bind addresses are ignored). Raises
    :class:`TlsUnavailableError` without ``cryptography``, OSError when the directory
    cannot be written, ValueError when the files there are not a CA and key.
    """
    if x509 is None:
        raise TlsUnavailableError(
            "serving over TLS needs the `cryptography` package: "
            "pip install 'blocks-network[devnet-tls]'"
        )
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted({*LOOPBACK_NAMES, *(h.strip("[]") for h in hosts if h not in _WILDCARD_HOSTS)})
    ca_cert, ca_key = _load_or_create_ca(directory)
    files = TlsFiles(
        directory / CA_CERT_FILE, directory / SERVER_CERT_FILE, directory / SERVER_KEY_FILE
    )
    if not _server_cert_usable(files.server_cert, ca_cert, names):
        _issue_server_cert(files, ca_cert, ca_key, names)
    return files


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _load_or_create_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not the local CA's key: remove {directory}")
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Blocks local network"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Blocks devnet CA ({socket.gethostname()})"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a certificate on disk always has its key beside it.
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    logger.info("created a local certificate authority in %s", cert_path)
    return cert, key


def _server_cert_usable(path: Path, ca_cert: x509.Certificate, names: list[str]) -> bool:
    if not path.exists() or not path.with_name(SERVER_KEY_FILE).exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    present = {*san.get_values_for_type(x509.DNSName)}
    present.update(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    fresh = cert.not_valid_after_utc - _now() > RENEW_BEFORE
    return fresh and present == {_canonical(n) for n in names}


def _canonical(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _issue_server_cert(
    files: TlsFiles,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[str],
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name.lower()))
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.server_key, _key_pem(key), private=True)
    _write(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    logger.info("issued a server certificate for %s", ", ".join(names))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` atomically (owner-only for keys)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if not private:
            os.chmod(tmp, 0o644)  # mkstemp makes files owner-only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
