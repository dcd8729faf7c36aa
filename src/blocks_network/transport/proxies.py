"""Which HTTP proxy a connection goes through, and the ``CONNECT`` tunnel through it.

The rules are httpx's (the official ``pubnub`` client's transport), so one application
routes the same way whichever client sends a request:

- ``HTTPS_PROXY`` for ``https`` URLs, ``HTTP_PROXY`` for ``http`` ones, ``ALL_PROXY`` for
  either when the scheme's own is unset; lower-case names too (they win, as in
  ``urllib.request.getproxies``); a value without a scheme means ``http://``.
- ``NO_PROXY`` (comma-separated): ``*`` bypasses every proxy; an IP address or
  ``localhost`` matches that host exactly; ``name`` matches ``name`` and its subdomains,
  ``.name`` only its subdomains; ``host:port`` also needs the port; ``scheme://host``
  only that scheme. Loopback is *not* bypassed unless listed. CIDR ranges are not
  understood (httpx does not either).

HTTPS goes through a ``CONNECT`` tunnel (TLS end to end with the server); plain HTTP is
sent to the proxy in absolute form (``GET http://host:port/path``). Only ``http://``
proxies are supported; credentials in the proxy URL are sent as Basic
``Proxy-Authorization``.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from blocks_network.errors import ConfigError, ProxyError

__all__ = ["Proxy", "connect_to_proxy", "open_tunnel", "proxy_for"]

_MAX_HEAD_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it listens and the ``Proxy-Authorization`` line it needs."""

    host: str
    port: int
    #: ``"Proxy-Authorization: Basic ...\\r\\n"``, or ``""`` without credentials.
    auth_line: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def proxy_for(
    scheme: str, host: str, port: int, proxies: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy for a connection to ``scheme://host:port``, or None to connect directly.

    ``proxies`` is ``urllib.request.getproxies()``'s mapping (read now when None): scheme →
    proxy URL, and ``"no"`` → the ``NO_PROXY`` list. Raises ConfigError for a proxy URL
    that is not ``http://host[:port]``.
    """
    table = urllib.request.getproxies() if proxies is None else proxies
    url = table.get(scheme) or table.get("all")
    if not url or _bypassed(scheme, host.lower(), port, table.get("no", "")):
        return None
    return _parse_proxy(url)


def _parse_proxy(url: str) -> Proxy:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port or 80
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or port < 0:
        raise ConfigError(
            f"unsupported proxy {url!r}: the SDK speaks to http://host[:port] proxies; "
            "fix HTTPS_PROXY / HTTP_PROXY / ALL_PROXY"
        )
    auth = ""
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = f"Proxy-Authorization: Basic {base64.b64encode(pair.encode()).decode()}\r\n"
    return Proxy(parts.hostname, port, auth)


def _bypassed(scheme: str, host: str, port: int, no_proxy: str) -> bool:
    host = host.strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if entry and _matches(entry, scheme, host, port):
            return True
    return False


def _matches(entry: str, scheme: str, host: str, port: int) -> bool:
    if "://" in entry:
        entry_scheme, _, entry = entry.partition("://")
        if entry_scheme not in ("all", scheme):
            return False
    if _is_ip(entry.split("/")[0]) or entry == "localhost":
        return host == entry.strip("[]")
    name, sep, entry_port = entry.rpartition(":")
    if sep and entry_port.isdigit() and not name.endswith(":"):
        if int(entry_port) != port:
            return False
        entry = name
    entry = entry.strip("[]")
    if entry.startswith("."):
        return host.endswith(entry)
    return host == entry or host.endswith(f".{entry}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def connect_to_proxy(proxy: Proxy, timeout: float) -> socket.socket:
    """A TCP connection to ``proxy``; raises :class:`~blocks_network.errors.ProxyError`
    (naming the proxy, not the server behind it) when it cannot be reached."""
    try:
        return socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except OSError as exc:
        raise ProxyError(
            f"cannot reach the proxy {proxy.url} ({exc}); check HTTPS_PROXY / HTTP_PROXY, "
            "or list the host in NO_PROXY to connect directly",
            proxy=proxy.url,
        ) from exc


def open_tunnel(proxy: Proxy, host: str, port: int, timeout: float) -> socket.socket:
    """A socket through ``proxy`` to ``host:port`` (``CONNECT``), ready for the TLS handshake.

    Raises :class:`~blocks_network.errors.ProxyError` when the proxy cannot be reached or
    answers anything but 2xx.
    """
    sock = connect_to_proxy(proxy, timeout)
    try:
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{proxy.auth_line}\r\n"
        sock.sendall(request.encode("latin-1"))
        status_line = _read_head(sock, proxy)
        fields = status_line.split(None, 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        if not 200 <= status < 300:
            hint = (
                "check the credentials in HTTPS_PROXY"
                if status == 407
                else "check HTTPS_PROXY, or list the host in NO_PROXY to connect directly"
            )
            raise ProxyError(
                f"the proxy {proxy.url} refused to open a tunnel to {target} "
                f"({status_line or 'no answer'}); {hint}",
                proxy=proxy.url,
                status=status or None,
            )
    except BaseException:
        sock.close()
        raise
    return sock


def _read_head(sock: socket.socket, proxy: Proxy) -> str:
    """The status line of the proxy's answer; reads exactly up to the blank line, so no
    byte of the TLS stream that follows is consumed."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        if len(data) > _MAX_HEAD_BYTES:
            raise ProxyError(f"the proxy {proxy.url} answered CONNECT with junk", proxy=proxy.url)
        byte = sock.recv(1)
        if not byte:
            break
        data += byte
    return data.decode("latin-1").split("\r\n", 1)[0].strip()
