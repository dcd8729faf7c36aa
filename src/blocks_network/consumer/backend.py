"""Authenticated JSON requests to the Blocks backend (§4.1, §5): headers, affinity, 401 retry.

Every backend call of the consumer goes through :class:`BackendClient`: it sets
``Content-Type``, ``Blocks-Protocol-Version``, the bearer token and the write-affinity hint,
records the hint the backend returns, and on HTTP 401 refreshes the token once (shared with
concurrent callers) and retries once. Network failures become NetworkError naming the
backend URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from blocks_network.auth.consumer_auth import ConsumerAuth
from blocks_network.errors import NetworkError
from blocks_network.protocol.constants import (
    HTTP_TIMEOUT_S,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
    WRITE_AFFINITY_HEADER,
)
from blocks_network.transport.http_client import HttpClient, HttpResponse
from blocks_network.transport.write_affinity import PROCESS_WRITE_AFFINITY, WriteAffinity

__all__ = ["BackendClient", "BackendRequests"]

logger = logging.getLogger(__name__)

_PROTECTED_HEADERS = frozenset(
    h.lower()
    for h in ("Authorization", "Content-Type", PROTOCOL_VERSION_HEADER, WRITE_AFFINITY_HEADER)
)
#: Decides from a response whether the token was refused (beyond a plain 401).
RejectionCheck = Callable[[HttpResponse], bool]


class BackendRequests:
    """What every backend request carries and how its answer is judged, for the sync
    :class:`BackendClient` and the async client alike."""

    def __init__(
        self,
        base_url: str,
        auth: ConsumerAuth | None,
        *,
        affinity: WriteAffinity = PROCESS_WRITE_AFFINITY,
        extra_headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        # Without ``auth``, the raw API key is the bearer (registry calls, §5.7); never refreshed.
        self._api_key = api_key
        self._affinity = affinity
        # Caller headers may add to, never replace, the headers the protocol needs.
        self._extra = {
            k: v for k, v in (extra_headers or {}).items() if k.lower() not in _PROTECTED_HEADERS
        }

    def headers(self, token: str | None) -> dict[str, str]:
        """The headers of one backend request carrying ``token``."""
        headers = dict(self._extra)
        headers["Content-Type"] = "application/json"
        headers[PROTOCOL_VERSION_HEADER] = PROTOCOL_VERSION
        headers.update(self._affinity.header())
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def unreachable(self, exc: NetworkError) -> NetworkError:
        """The error for a backend that could not be reached."""
        return NetworkError(
            f"could not reach the Blocks backend at {self.base_url} "
            f"({exc.__cause__ or exc}); is the network running? check the CDM "
            "document's api.baseUrl or BLOCKS_BACKEND_URL"
        )

    def refused(self, response: HttpResponse, rejected: RejectionCheck | None) -> bool:
        """Record the answer's affinity hint; whether it refused the token (refresh once)."""
        self._affinity.observe(response.headers.get(WRITE_AFFINITY_HEADER.lower()))
        return response.status == 401 or (rejected is not None and rejected(response))


class BackendClient(BackendRequests):
    """Sends JSON to ``base_url`` paths with the consumer's credentials; thread-safe."""

    def __init__(
        self,
        http: HttpClient,
        base_url: str,
        auth: ConsumerAuth | None,
        *,
        affinity: WriteAffinity = PROCESS_WRITE_AFFINITY,
        extra_headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(
            base_url, auth, affinity=affinity, extra_headers=extra_headers, api_key=api_key
        )
        self.http = http

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        timeout: float = HTTP_TIMEOUT_S,
        rejected: RejectionCheck | None = None,
    ) -> HttpResponse:
        """Send one request (blocking); returns the response whatever its status.

        On HTTP 401 (or when ``rejected(response)`` says the token was refused) the token is
        refreshed once and the request retried once. Raises NetworkError when the backend
        cannot be reached and AuthRefreshFailedError when the refresh fails.
        """
        url = self.base_url + path
        for attempt in (1, 2):
            token = self.auth.token if self.auth is not None else self._api_key
            try:
                response = self.http.request(
                    method, url, json_body=json_body, headers=self.headers(token), timeout=timeout
                )
            except NetworkError as exc:
                raise self.unreachable(exc) from exc
            if not self.refused(response, rejected) or attempt == 2 or self.auth is None:
                return response
            logger.info("backend refused the token on %s %s; refreshing once", method, path)
            self.auth.refresh_after_rejection(token)
        raise AssertionError("unreachable")  # pragma: no cover
