"""Agent credentials (protocol §5.1, §5.2, §6): connect with the API key, refresh on demand.

There is no refresh timer: a backend request answered 401 triggers one refresh and one retry
(:meth:`AgentAuth.request`). A refresh answered ``REFRESH_TOKEN_INVALID`` re-runs connect with
the stored payload. ``API_KEY_INVALID`` and ``AGENT_FORCED_OFFLINE`` are fatal (typed errors
the runtime does not retry); anything else is an ordinary failure.
"""

from __future__ import annotations

import logging
import platform
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from blocks_network.auth.token_sources import api_key_invalid_text, error_text
from blocks_network.errors import (
    AgentForcedOfflineError,
    ApiKeyInvalidError,
    AuthError,
    BackendError,
    NetworkError,
)
from blocks_network.protocol.constants import (
    API_PATH_AGENT_CONNECT,
    API_PATH_AGENT_REFRESH,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
    SDK_DISTRIBUTION,
    SDK_LANGUAGE,
    SUPPORTED_PROTOCOL_VERSIONS,
    UNKNOWN_SDK_VERSION,
    WRITE_AFFINITY_HEADER,
)
from blocks_network.protocol.errors import (
    AGENT_FORCED_OFFLINE,
    API_KEY_INVALID,
    REFRESH_TOKEN_INVALID,
)
from blocks_network.transport.http_client import HttpClient, HttpResponse
from blocks_network.transport.write_affinity import PROCESS_WRITE_AFFINITY, WriteAffinity

__all__ = ["AgentAuth", "ConnectResult", "connect_payload", "sdk_version"]

logger = logging.getLogger(__name__)

_FORCED_OFFLINE_TEXT = (
    "Agent forced offline by an administrator. It must be re-enabled before it can reconnect."
)


def sdk_version() -> str:
    """The installed ``blocks-network`` version, ``"unknown"`` when not installed."""
    try:
        return metadata.version(SDK_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_SDK_VERSION


def connect_payload(
    *,
    agent_name: str,
    instance_id: str,
    billing_mode: str,
    listing: str | None,
    expected_instances: int | None,
    concurrency: int | None,
    max_pending_backlog: int | None,
    max_running_time_sec: int | None,
    cli_version: str | None,
) -> dict[str, Any]:
    """The connect body of §5.1 (None-valued keys left out)."""
    body: dict[str, Any] = {
        "agentName": agent_name,
        "instanceId": instance_id,
        "billingMode": billing_mode,
        "listing": listing,
        "expectedInstances": expected_instances,
        "concurrency": concurrency,
        "maxPendingBacklog": max_pending_backlog,
        "maxRunningTimeSec": max_running_time_sec,
        "deviceOs": platform.system().lower() or None,
        "sdkLanguage": SDK_LANGUAGE,
        "sdkVersion": sdk_version(),
        "protocolVersions": list(SUPPORTED_PROTOCOL_VERSIONS),
        "preferredProtocolVersion": PROTOCOL_VERSION,
        "cliVersion": cli_version,
    }
    return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class ConnectResult:
    """What connect returned that the runtime uses."""

    access_token: str
    refresh_token: str | None
    expires_in: float | None
    pam_token: str | None
    control_channel: str | None
    agent_id: str | None
    billing_mode: str | None
    listing: str | None
    raw: Mapping[str, Any]


class AgentAuth:
    """The agent's access JWT for backend calls; thread-safe.

    ``on_reconnect(result)`` is called when a refresh had to fall back to a full connect, so
    the runtime can apply the new control-channel token.
    """

    def __init__(
        self,
        http: HttpClient,
        base_url: str,
        api_key: str,
        payload: dict[str, Any],
        *,
        affinity: WriteAffinity = PROCESS_WRITE_AFFINITY,
        on_reconnect: Callable[[ConnectResult], None] | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._payload = dict(payload)
        self._affinity = affinity
        self._on_reconnect = on_reconnect
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_token: str | None = None

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def access_token(self) -> str | None:
        """The current access JWT (None before :meth:`connect`)."""
        with self._lock:
            return self._access_token

    def update_payload(self, **fields: Any) -> None:
        """Change fields of the stored connect body (e.g. ``billingMode`` after a switch)."""
        with self._lock:
            for key, value in fields.items():
                if value is None:
                    self._payload.pop(key, None)
                else:
                    self._payload[key] = value

    # --- HTTP -----------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], bearer: str) -> HttpResponse:
        headers = {
            "Authorization": f"Bearer {bearer}",
            PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION,
            **self._affinity.header(),
        }
        try:
            response = self._http.request(
                "POST", self._base_url + path, json_body=body, headers=headers
            )
        except NetworkError as exc:
            raise NetworkError(
                f"could not reach the Blocks backend at {self._base_url} "
                f"({exc.__cause__ or exc}); is the network running?"
            ) from exc
        self._affinity.observe(response.headers.get(WRITE_AFFINITY_HEADER.lower()))
        return response

    def _fatal_or_error(self, response: HttpResponse, what: str) -> BackendError:
        message, code = error_text(response)
        if code == API_KEY_INVALID:
            return ApiKeyInvalidError(
                api_key_invalid_text(message), status=response.status, code=code
            )
        if code == AGENT_FORCED_OFFLINE:
            return AgentForcedOfflineError(_FORCED_OFFLINE_TEXT, status=response.status, code=code)
        return BackendError(
            f"{what} failed (HTTP {response.status}): {message}",
            status=response.status,
            code=code,
        )

    # --- connect / refresh -----------------------------------------------------------------

    def connect(self) -> ConnectResult:
        """POST connect with the API key; stores the tokens and returns the result.

        Raises ApiKeyInvalidError / AgentForcedOfflineError (fatal), BackendError
        ("Agent connect failed: ...", with ``status`` and ``code``) or NetworkError.
        """
        with self._lock:
            payload = dict(self._payload)
        response = self._post(API_PATH_AGENT_CONNECT, payload, self._api_key)
        if not 200 <= response.status < 300:
            raise self._fatal_or_error(response, "Agent connect")
        body = response.json()
        token = body.get("accessToken") if isinstance(body, Mapping) else None
        if not isinstance(body, Mapping) or not isinstance(token, str) or not token:
            raise AuthError(
                f"Agent connect at {self._base_url} returned no accessToken; is "
                "BLOCKS_CDM_URL pointing at a Blocks backend?",
                status=response.status,
            )
        result = ConnectResult(
            access_token=token,
            refresh_token=_opt_str(body.get("refreshToken")),
            expires_in=_opt_number(body.get("expiresIn")),
            pam_token=_opt_str(body.get("pamToken")),
            control_channel=_opt_str(body.get("controlChannel")),
            agent_id=_opt_str(body.get("agentId")),
            billing_mode=_opt_str(body.get("billingMode")),
            listing=_opt_str(body.get("listing")),
            raw=body,
        )
        with self._lock:
            self._access_token = result.access_token
            self._refresh_token = result.refresh_token
        return result

    def refresh(self) -> None:
        """Get a new access token (rotating the refresh token); falls back to connect.

        Raises the fatal errors of :meth:`connect`, or AuthError/NetworkError.
        """
        with self._lock:
            refresh_token = self._refresh_token
        if refresh_token is None:
            self._reconnect()
            return
        response = self._post(
            API_PATH_AGENT_REFRESH, {"refreshToken": refresh_token}, self._api_key
        )
        if 200 <= response.status < 300:
            body = response.json()
            token = body.get("accessToken") if isinstance(body, Mapping) else None
            if isinstance(body, Mapping) and isinstance(token, str) and token:
                with self._lock:
                    self._access_token = token
                    self._refresh_token = _opt_str(body.get("refreshToken")) or refresh_token
                return
            raise AuthError("Token refresh failed: the response had no accessToken")
        _, code = error_text(response)
        if code == REFRESH_TOKEN_INVALID:
            logger.info("refresh token no longer valid; connecting again")
            self._reconnect()
            return
        error = self._fatal_or_error(response, "Token refresh")
        if isinstance(error, (ApiKeyInvalidError, AgentForcedOfflineError)):
            raise error
        raise AuthError(f"Token refresh failed: {error}", status=error.status, code=error.code)

    def _reconnect(self) -> None:
        result = self.connect()
        if self._on_reconnect is not None:
            self._on_reconnect(result)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """An authorised backend request; on HTTP 401 refreshes once and retries once.

        Returns the response for any status; raises NetworkError, or the refresh's errors.
        """
        for attempt in range(2):
            token = self.access_token
            if token is None:
                self.connect()
                token = self.access_token
            headers = {
                "Authorization": f"Bearer {token}",
                PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION,
                **self._affinity.header(),
            }
            try:
                response = self._http.request(
                    method,
                    self._base_url + path,
                    json_body=json_body,
                    headers=headers,
                    timeout=timeout,
                )
            except NetworkError as exc:
                raise NetworkError(
                    f"could not reach the Blocks backend at {self._base_url} "
                    f"({exc.__cause__ or exc})"
                ) from exc
            self._affinity.observe(response.headers.get(WRITE_AFFINITY_HEADER.lower()))
            if response.status != 401 or attempt == 1:
                return response
            self.refresh()
        raise AssertionError("unreachable")  # pragma: no cover


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _opt_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
