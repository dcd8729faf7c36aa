"""Where consumer tokens come from: the three modes of §6 behind one small interface.

Each source turns its mode's request and response into a :class:`TokenResult` and its
failures into typed errors (ApiKeyInvalidError, AuthError, NetworkError). Sources hold no
timers and no locks; ``ConsumerAuth`` decides when to call them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol

from blocks_network.auth.token_types import TokenEndpointConfig, TokenProvider, TokenResult
from blocks_network.errors import ApiKeyInvalidError, AuthError, BlocksError, NetworkError
from blocks_network.protocol.constants import (
    API_PATH_AGENT_REFRESH,
    API_PATH_CONSUMER_TOKEN,
    DEFAULT_CONSUMER_TOKEN_TTL_S,
    WRITE_AFFINITY_HEADER,
)
from blocks_network.protocol.errors import API_KEY_INVALID, REFRESH_TOKEN_INVALID
from blocks_network.transport.http_client import HttpClient, HttpResponse
from blocks_network.transport.write_affinity import PROCESS_WRITE_AFFINITY, WriteAffinity

__all__ = [
    "ApiKeyTokenSource",
    "EndpointTokenSource",
    "ProviderTokenSource",
    "TokenSource",
    "api_key_invalid_text",
    "error_text",
]

logger = logging.getLogger(__name__)

_JSON = "application/json"
_MAX_BODY_IN_MESSAGE = 300


class TokenSource(Protocol):
    """Acquires consumer tokens; ``describe`` names the source in error messages."""

    @property
    def describe(self) -> str: ...

    def acquire(self) -> TokenResult:
        """Obtain a first token; raises AuthError, ApiKeyInvalidError or NetworkError."""
        ...

    def refresh(self) -> TokenResult:
        """Obtain a replacement token; raises like :meth:`acquire`."""
        ...


def error_text(response: HttpResponse) -> tuple[str, str | None]:
    """``(message, code)`` of an error response: JSON ``error``/``message``/``code`` or the text."""
    body = response.json()
    if isinstance(body, Mapping):
        code = body.get("code") if isinstance(body.get("code"), str) else None
        for key in ("error", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value, code
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return str(value["message"]), code
    text = response.text.strip()[:_MAX_BODY_IN_MESSAGE]
    return text or f"HTTP {response.status}", None


_API_KEY_INVALID = "API key invalid or revoked"


def api_key_invalid_text(message: str) -> str:
    """``API key invalid or revoked: <message>``, without saying it twice when the backend's
    own message already starts with it (the local network's does)."""
    if message.startswith(_API_KEY_INVALID):
        return message
    return f"{_API_KEY_INVALID}: {message}"


def _expires_in(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return float(DEFAULT_CONSUMER_TOKEN_TTL_S)
    return float(value)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class ApiKeyTokenSource:
    """Mode 1: exchange an API key at the backend, then refresh with the rotating refresh token."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        http: HttpClient,
        affinity: WriteAffinity = PROCESS_WRITE_AFFINITY,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._affinity = affinity
        self._refresh_token: str | None = None
        self._user_id: str | None = None

    @property
    def describe(self) -> str:
        return f"API-key exchange at {self._base_url}"

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> HttpResponse:
        url = self._base_url + path
        send = {"Content-Type": _JSON, **self._affinity.header(), **headers}
        try:
            response = self._http.request("POST", url, json_body=body, headers=send)
        except NetworkError as exc:
            raise NetworkError(
                f"could not reach the Blocks backend at {self._base_url} "
                f"({exc.__cause__ or exc}); check the CDM document's api.baseUrl or "
                "BLOCKS_BACKEND_URL, and that the network is running"
            ) from exc
        self._affinity.observe(response.headers.get(WRITE_AFFINITY_HEADER.lower()))
        return response

    def _result(self, response: HttpResponse, what: str) -> TokenResult:
        body = response.json()
        token = body.get("accessToken") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise AuthError(
                f"{what} at {self._base_url} returned no accessToken; is BLOCKS_CDM_URL "
                "pointing at a Blocks backend?",
                status=response.status,
            )
        assert isinstance(body, Mapping)
        self._refresh_token = _opt_str(body.get("refreshToken")) or self._refresh_token
        self._user_id = _opt_str(body.get("userId")) or self._user_id
        return TokenResult(token, _expires_in(body.get("expiresIn")), self._user_id)

    def _raise_for(self, response: HttpResponse, what: str) -> None:
        message, code = error_text(response)
        if code == API_KEY_INVALID:
            raise ApiKeyInvalidError(
                f"{api_key_invalid_text(message).rstrip('.')} (create a new key with "
                "`blocks devnet keys create` or in the dashboard)",
                status=response.status,
                code=code,
            )
        raise AuthError(
            f"{what} failed with HTTP {response.status}: {message}",
            status=response.status,
            code=code,
        )

    def acquire(self) -> TokenResult:
        response = self._post(API_PATH_CONSUMER_TOKEN, {"apiKey": self._api_key}, {})
        if not 200 <= response.status < 300:
            self._raise_for(response, "API-key exchange")
        return self._result(response, "API-key exchange")

    def refresh(self) -> TokenResult:
        if self._refresh_token is None:
            return self.acquire()
        response = self._post(
            API_PATH_AGENT_REFRESH,
            {"refreshToken": self._refresh_token},
            {"Authorization": f"Bearer {self._api_key}"},
        )
        if 200 <= response.status < 300:
            return self._result(response, "token refresh")
        _, code = error_text(response)
        if code == REFRESH_TOKEN_INVALID:
            logger.info("refresh token rejected (%s); exchanging the API key again", code)
            self._refresh_token = None
            return self.acquire()
        self._raise_for(response, "token refresh")
        raise AssertionError("unreachable")  # pragma: no cover


class EndpointTokenSource:
    """Mode 2: POST to a customer token endpoint answering ``{token, expiresIn, userId}``."""

    def __init__(self, endpoint: str | TokenEndpointConfig, http: HttpClient) -> None:
        headers: dict[str, str] = {}
        body: Any = {}
        if isinstance(endpoint, str):
            url = endpoint
        elif isinstance(endpoint, Mapping) and isinstance(endpoint.get("url"), str):
            url = endpoint["url"]
            headers.update(endpoint.get("headers") or {})
            body = endpoint.get("body", {})
        else:
            raise AuthError(
                "token_endpoint must be a URL string or a TokenEndpointConfig with a 'url'"
            )
        if not url.startswith(("http://", "https://")):
            raise AuthError(f"token_endpoint {url!r} is not an http(s) URL")
        self._url = url
        # User headers win over the default Content-Type whatever their case.
        merged = {"Content-Type": _JSON}
        lowered = {k.lower() for k in headers}
        if "content-type" in lowered:
            merged = {}
        merged.update(headers)
        self._headers = merged
        try:
            self._payload = json.dumps({} if body is None else body).encode()
        except (TypeError, ValueError) as exc:
            raise AuthError(f"token_endpoint body must be JSON-serializable: {exc}") from exc
        self._http = http

    @property
    def describe(self) -> str:
        return f"token endpoint {self._url}"

    def acquire(self) -> TokenResult:
        # No write-affinity header: this is the customer's endpoint, not the Blocks backend.
        try:
            # Raw body: json_body would add a second Content-Type next to the user's own.
            response = self._http.request(
                "POST", self._url, body=self._payload, headers=self._headers
            )
        except NetworkError as exc:
            raise NetworkError(
                f"could not reach the token endpoint {self._url} ({exc.__cause__ or exc})"
            ) from exc
        if not 200 <= response.status < 300:
            message, code = error_text(response)
            raise AuthError(
                f"token endpoint {self._url} answered HTTP {response.status}: {message}; "
                "check the endpoint and the headers/body it needs",
                status=response.status,
                code=code,
            )
        body = response.json()
        token = body.get("token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise AuthError(
                f"token endpoint {self._url} must answer JSON "
                '{"token": "...", "expiresIn": 60, "userId": "..."}, got '
                f"{response.text.strip()[:_MAX_BODY_IN_MESSAGE]!r}",
                status=response.status,
            )
        assert isinstance(body, Mapping)
        return TokenResult(token, _expires_in(body.get("expiresIn")), _opt_str(body.get("userId")))

    def refresh(self) -> TokenResult:
        return self.acquire()


class ProviderTokenSource:
    """Mode 3: a callable returning :class:`TokenResult` (or a ``(token, expires_in[, user_id])``)."""

    def __init__(self, provider: TokenProvider) -> None:
        if not callable(provider):
            raise AuthError("token_provider must be a callable returning TokenResult")
        self._provider = provider

    @property
    def describe(self) -> str:
        name = getattr(self._provider, "__qualname__", None) or repr(self._provider)
        return f"token_provider {name}"

    def acquire(self) -> TokenResult:
        try:
            result: object = self._provider()
        except BlocksError:
            raise
        except Exception as exc:
            raise AuthError(f"{self.describe} raised {type(exc).__name__}: {exc}") from exc
        if isinstance(result, tuple) and 2 <= len(result) <= 3:
            token, expires_in, *rest = result
            user_id = rest[0] if rest else None
            if isinstance(token, str) and token and (user_id is None or isinstance(user_id, str)):
                return TokenResult(token, _expires_in(expires_in), user_id or None)
        raise AuthError(
            f"{self.describe} must return TokenResult(token=..., expires_in=..., user_id=...), "
            f"got {type(result).__name__}"
        )

    def refresh(self) -> TokenResult:
        return self.acquire()
