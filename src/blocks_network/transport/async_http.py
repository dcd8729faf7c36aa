"""The asyncio counterpart of :class:`~blocks_network.transport.http_client.HttpClient`, on
aiohttp (already a dependency of the local network and of the official client's extras).

It behaves as the sync client does, so one application routes and trusts the same way
whichever API it uses:

- **TLS**: the context of :func:`~blocks_network.transport.tls.client_ssl_context`
  (``SSL_CERT_FILE``/``SSL_CERT_DIR``, else the system store); a certificate that does not
  verify raises :class:`~blocks_network.errors.CertificateError`, never retried.
- **Proxies**: not aiohttp's ``trust_env`` (urllib's ``NO_PROXY`` matching differs from
  httpx's), but :func:`~blocks_network.transport.proxies.proxy_for`: HTTPS through a
  ``CONNECT`` tunnel, HTTP in absolute form, Basic credentials from the proxy URL.
- **Routes are cached per origin** (proxy and TLS context), and read again when one of
  :data:`ROUTE_VARIABLES` changes: ``urllib.request.getproxies()`` walks the whole
  environment (30 to 200 µs a request). Choice: a CA file replaced at
  the same path is picked up when a variable changes or by a new client (the sync
  transport checks its mtime on each new connection).
- **Redirects** are returned like any status, not followed (as the sync client).
- **Retries**: the same :class:`~blocks_network.transport.retry.RetryPolicy` (3 tries,
  0.5 s then 1 s apart, for failures to connect or to read an answer); any HTTP status is
  returned, not raised; :meth:`AsyncHttpClient.aclose` ends requests and back-offs at once
  (``ClosedError``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
from collections.abc import Mapping
from typing import Any, Final

import aiohttp

from blocks_network.errors import (
    CertificateError,
    ClosedError,
    ConfigError,
    NetworkError,
    ProxyError,
)
from blocks_network.transport.connections import HttpResponse
from blocks_network.transport.http_client import prepare_request
from blocks_network.transport.proxies import Proxy, proxy_for
from blocks_network.transport.retry import TRANSIENT, RetryPolicy
from blocks_network.transport.tls import (
    ENV_SSL_CERT_DIR,
    ENV_SSL_CERT_FILE,
    certificate_error,
    client_ssl_context,
)

__all__ = ["ROUTE_VARIABLES", "AsyncHttpClient"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS: Final = 30.0
#: Connections kept open per origin (aiohttp's per-host limit: more requests wait).
DEFAULT_POOL_SIZE: Final = 64
_CLOSED: Final = "this SDK client was closed; its requests stop here (create a new client)"
#: Failures worth another try, as the sync client retries OSError (ProxyError is one): the
#: request did not reach the server, or its answer was lost.
_TRANSIENT: Final = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ProxyError,
)
#: The environment a route depends on: proxy_for's variables (both spellings, as urllib
#: reads them; REQUEST_METHOD turns HTTP_PROXY off) and client_ssl_context's.
ROUTE_VARIABLES: Final = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
    ENV_SSL_CERT_FILE,
    ENV_SSL_CERT_DIR,
)
#: Origins whose route is remembered (redirects may visit many hosts: bounded).
_MAX_ROUTES: Final = 64

#: How to reach an origin: the proxy (None: directly) and the TLS context (False: plain).
_Route = tuple[Proxy | None, ssl.SSLContext | bool]


class _Routes:
    """The route per origin, valid while :data:`ROUTE_VARIABLES` keep their values."""

    def __init__(self) -> None:
        self._environment: tuple[str | None, ...] = ()
        self._routes: dict[tuple[bool, str, int], _Route] = {}

    def get(self, secure: bool, host: str, port: int) -> _Route:
        """Raises ConfigError (an unsupported proxy URL, unreadable certificates)."""
        environment = tuple(map(os.environ.get, ROUTE_VARIABLES))
        if environment != self._environment or len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
            self._environment = environment
        origin = (secure, host, port)
        route = self._routes.get(origin)
        if route is None:
            proxy = proxy_for("https" if secure else "http", host, port)
            route = self._routes[origin] = (proxy, client_ssl_context() if secure else False)
        return route


class AsyncHttpClient:
    """One aiohttp session, made on first use inside the running event loop; not for use
    from several event loops. Close with :meth:`aclose` (or ``async with``)."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        user_agent: str = "blocks-network-python",
        pool_size: int = DEFAULT_POOL_SIZE,
        retry: RetryPolicy = TRANSIENT,
    ) -> None:
        self._timeout = timeout
        self._user_agent = user_agent
        self._pool_size = pool_size
        self._retry = retry
        self._session: aiohttp.ClientSession | None = None
        self._routes = _Routes()
        # Set by aclose(): ends a retry back-off at once.
        self._closing = asyncio.Event()
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        retry_transient: bool = True,
    ) -> HttpResponse:
        """Send one request; network failures raise :class:`NetworkError` after retries,
        an untrusted certificate :class:`CertificateError`, a proxy that refuses the tunnel
        :class:`~blocks_network.errors.ProxyError`, and :class:`ClosedError` after
        :meth:`aclose`. Any HTTP status is returned."""
        parts, _, body, send_headers = prepare_request(
            url, json_body, body, headers, self._user_agent
        )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        failures = 0
        while True:
            session = self._open()
            try:
                return await self._send(
                    session, method, url, parts.hostname or "", port, body, send_headers, timeout
                )
            except _TRANSIENT as exc:
                if self._closed:
                    raise ClosedError(_CLOSED) from exc
                failures += 1
                delay = self._retry.delay(failures) if retry_transient else None
                if delay is not None:
                    logger.debug("request to %s failed (%s); retrying in %.2f s", url, exc, delay)
                    if not await self._wait(delay):
                        continue
                if self._closed:
                    raise ClosedError(_CLOSED) from exc
                raise NetworkError(
                    f"could not reach {parts.scheme}://{parts.netloc}: {exc or type(exc).__name__}"
                ) from exc

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        host: str,
        port: int,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> HttpResponse:
        proxy, tls = self._routes.get(url.startswith("https:"), host, port)
        proxy_headers = None
        if proxy is not None and proxy.auth_line:
            name, _, value = proxy.auth_line.strip().partition(": ")
            proxy_headers = {name: value}
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=_client_timeout(timeout or self._timeout),
                ssl=tls,
                proxy=None if proxy is None else proxy.url,
                proxy_headers=proxy_headers,
                allow_redirects=False,  # returned, as the sync client does: callers follow
            ) as response:
                data = await response.read()
                return HttpResponse(response.status, _lower_keys(response.headers), data)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _certificate_error(host, port, exc) from exc
        except aiohttp.ClientProxyConnectionError as exc:
            assert proxy is not None
            raise ProxyError(
                f"cannot reach the proxy {proxy.url} ({exc}); check HTTPS_PROXY / HTTP_PROXY, "
                "or list the host in NO_PROXY to connect directly",
                proxy=proxy.url,
            ) from exc
        except aiohttp.ClientHttpProxyError as exc:
            assert proxy is not None
            hint = (
                "check the credentials in HTTPS_PROXY"
                if exc.status == 407
                else "check HTTPS_PROXY, or list the host in NO_PROXY to connect directly"
            )
            raise ProxyError(
                f"the proxy {proxy.url} refused to open a tunnel to {host}:{port} "
                f"(HTTP {exc.status}); {hint}",
                proxy=proxy.url,
                status=exc.status,
            ) from exc

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClosedError(_CLOSED)
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._pool_size)
            # Proxies are chosen per origin by proxy_for() (_Routes), as the sync transport does.
            # No cookie jar: the sync transport keeps no cookies either (and it costs per request).
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless closed first; True when closed."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Close the connections; later requests (and retries waiting) raise ClosedError."""
        self._closed = True
        self._closing.set()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


@functools.lru_cache(maxsize=16)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in lower case, as :class:`PlainConnection` reports them."""
    return {name.lower(): value for name, value in headers.items()}


def _certificate_error(
    host: str, port: int, exc: aiohttp.ClientConnectorCertificateError
) -> ConfigError:
    cause = exc.certificate_error
    if isinstance(cause, ssl.SSLCertVerificationError):
        return certificate_error(host, port, cause)
    return CertificateError(
        f"the TLS certificate of {host}:{port} does not verify ({cause}); set SSL_CERT_FILE "
        "to the certificate (PEM) of the authority that signed it",
        host=host,
        port=port,
    )
