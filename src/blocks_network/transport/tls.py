"""The SDK's one TLS client context: which authorities it trusts, and what a failed
verification says.

Every HTTPS connection the SDK opens (CDM, backend, realtime, uploads, downloads) takes its
context from :func:`client_ssl_context`: the certificates in ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` when set (as OpenSSL, requests and httpx read them; the file then replaces
the system store), the system store otherwise. Hostnames are always verified.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from typing import Final

from blocks_network.errors import CertificateError, ConfigError

__all__ = ["ENV_SSL_CERT_DIR", "ENV_SSL_CERT_FILE", "certificate_error", "client_ssl_context"]

ENV_SSL_CERT_FILE: Final = "SSL_CERT_FILE"
ENV_SSL_CERT_DIR: Final = "SSL_CERT_DIR"


def client_ssl_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The context for the SDK's HTTPS connections (shared while the variables and the
    file stay the same; contexts are thread-safe).

    Raises :class:`~blocks_network.errors.ConfigError` when ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` names something that cannot be loaded.
    """
    env = os.environ if environ is None else environ
    cafile = env.get(ENV_SSL_CERT_FILE) or None
    capath = env.get(ENV_SSL_CERT_DIR) or None
    try:
        # The file's mtime is in the key: a CA re-created at the same path is reloaded.
        stamp = os.stat(cafile).st_mtime_ns if cafile else 0
        return _context(cafile, capath, stamp)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the trusted certificates from {ENV_SSL_CERT_FILE}={cafile!r} / "
            f"{ENV_SSL_CERT_DIR}={capath!r}: {exc}; point them at a PEM certificate file "
            "(or a c_rehash'ed folder) or unset them to use the system store"
        ) from exc


@functools.lru_cache(maxsize=8)
def _context(cafile: str | None, capath: str | None, _stamp: int) -> ssl.SSLContext:
    # create_default_context verifies certificates and hostnames; with a cafile or capath it
    # loads only those, without them the system store.
    return ssl.create_default_context(cafile=cafile, capath=capath)


def certificate_error(host: str, port: int, exc: ssl.SSLCertVerificationError) -> CertificateError:
    """The typed error for a server certificate ``host:port`` failed to verify with."""
    reason = exc.verify_message or exc.reason or str(exc)
    trusted = os.environ.get(ENV_SSL_CERT_FILE)
    where = f"the certificates in {ENV_SSL_CERT_FILE}={trusted}" if trusted else "the system store"
    return CertificateError(
        f"the TLS certificate of {host}:{port} does not verify against {where} ({reason}); "
        f"if a local or corporate authority signed it, set {ENV_SSL_CERT_FILE} to that "
        "authority's certificate (PEM) — `blocks devnet --tls` prints the line to export",
        host=host,
        port=port,
    )
