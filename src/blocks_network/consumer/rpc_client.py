"""JSON-RPC 2.0 over ``POST {baseUrl}/api/v1/rpc`` (§4.1).

Request ids are ``rpc-{epoch ms}-{8 hex}``. A transport 401, or an error whose ``data.code``
says the embedded token was revoked/killed/out of scope, refreshes the token once and
retries once. Errors become :class:`~blocks_network.errors.RpcError` (message: ``data.message``
in preference to ``message``), with :class:`~blocks_network.errors.BillingModeMismatchError`
for ``BillingModeMismatch``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from blocks_network.consumer.backend import BackendClient
from blocks_network.errors import AuthError, BackendError, BillingModeMismatchError, RpcError
from blocks_network.protocol.constants import API_PATH_RPC, HTTP_TIMEOUT_S
from blocks_network.protocol.errors import AUTH_REFRESH_RETRYABLE_CODES, ProtocolError
from blocks_network.protocol.ids import new_rpc_id
from blocks_network.protocol.rpc import (
    JSONRPC_VERSION,
    RpcErrorObject,
    RpcFailure,
    parse_rpc_response,
)
from blocks_network.protocol.task_api import parse_billing_mode_mismatch
from blocks_network.transport.http_client import HttpResponse

__all__ = ["RpcClient", "rpc_request", "rpc_result", "token_refused"]

logger = logging.getLogger(__name__)

_MAX_TEXT = 300


def _rpc_error(response: HttpResponse) -> RpcErrorObject | None:
    body = response.json()
    if not isinstance(body, Mapping) or body.get("error") is None:
        return None
    try:
        parsed = parse_rpc_response(body)
    except ProtocolError:
        return None
    return parsed.error if isinstance(parsed, RpcFailure) else None


def token_refused(response: HttpResponse) -> bool:
    """Whether an RPC answer says the embedded token was refused (refresh once, retry)."""
    error = _rpc_error(response)
    return error is not None and error.wire_code in AUTH_REFRESH_RETRYABLE_CODES


def rpc_request(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-RPC 2.0 request body calling ``method`` (sync and async clients alike)."""
    return {
        "jsonrpc": JSONRPC_VERSION,
        "id": new_rpc_id(),
        "method": method,
        "params": dict(params),
    }


def rpc_result(method: str, response: HttpResponse) -> Any:
    """The ``result`` of ``method``'s answer, or the typed error it stands for: see
    :meth:`RpcClient.call`."""
    error = _rpc_error(response)
    if error is not None:
        raise _typed(method, error, response.status)
    if response.status == 401:
        raise AuthError(
            f"{method}: the backend refused the consumer token even after a refresh "
            f"(HTTP 401): {response.text[:_MAX_TEXT]}",
            status=401,
        )
    if not 200 <= response.status < 300:
        raise RpcError(
            f"{method} failed: HTTP {response.status}: {response.text.strip()[:_MAX_TEXT]}",
            status=response.status,
        )
    payload = response.json()
    if not isinstance(payload, Mapping) or "result" not in payload:
        raise RpcError(
            f"{method}: the backend answered something other than a JSON-RPC response: "
            f"{response.text.strip()[:_MAX_TEXT]!r}",
            status=response.status,
        )
    return payload["result"]


def _typed(method: str, error: RpcErrorObject, status: int) -> BackendError:
    text = error.text or f"{method} failed (JSON-RPC error {error.code})"
    details = dict(error.data.details) if error.data and error.data.details else None
    mismatch = parse_billing_mode_mismatch(error.data)
    if mismatch is not None:
        expected, got = mismatch
        return BillingModeMismatchError(
            text,
            expected=expected,
            got=got,
            status=status,
            code=error.wire_code,
            rpc_code=error.code,
            details=details,
        )
    if status == 401:
        return AuthError(text, status=status, code=error.wire_code)
    return RpcError(text, status=status, code=error.wire_code, rpc_code=error.code, details=details)


class RpcClient:
    """Calls task-service methods; thread-safe (shares the backend client's pool)."""

    def __init__(self, backend: BackendClient) -> None:
        self.backend = backend

    def call(
        self, method: str, params: Mapping[str, Any], *, timeout: float = HTTP_TIMEOUT_S
    ) -> Any:
        """Call ``method`` and return its ``result`` (blocking, up to ``timeout`` seconds).

        Raises BillingModeMismatchError, RpcError (``rpc_code``, ``code`` = ``data.code``,
        ``status``, ``details``), AuthError when the token is refused even after a refresh,
        AuthRefreshFailedError when the refresh fails, NetworkError when unreachable.
        """
        response = self.backend.request(
            "POST",
            API_PATH_RPC,
            json_body=rpc_request(method, params),
            timeout=timeout,
            rejected=token_refused,
        )
        return rpc_result(method, response)
