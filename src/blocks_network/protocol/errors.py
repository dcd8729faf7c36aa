"""Wire error codes and the protocol's own exceptions.

Exception hierarchy (everything raised by ``blocks_network.protocol``)::

    ValueError
     └── ProtocolError          a wire document or name does not have the required shape
          ├── AgentCardError    an agent card breaks a rule; carries the JSON path
          └── RpcRequestError   a JSON-RPC request is unusable; carries the JSON-RPC code

The string and integer codes below are what travels on the wire; the backend's error table
and the SDK's error mapping both import them so neither side spells a code by hand.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENT_AT_CAPACITY",
    "AGENT_FORCED_OFFLINE",
    "AGENT_NOT_FOUND",
    "AGENT_OUT_OF_SCOPE",
    "API_KEY_INVALID",
    "AUTH_REFRESH_RETRYABLE_CODES",
    "BILLING_MODE_MISMATCH",
    "EMBEDDED_JWT_KILLED",
    "EMBEDDED_JWT_LOGOUT",
    "EMBEDDED_JWT_REVOKED",
    "EMBEDDED_JWT_SCOPE_DRIFT",
    "FORBIDDEN",
    "INVALID_REQUEST",
    "INVALID_START_TASK",
    "REFRESH_TOKEN_INVALID",
    "RPC_AGENT_UNAVAILABLE",
    "RPC_BILLING_MODE_MISMATCH",
    "RPC_CONFLICT",
    "RPC_FORBIDDEN",
    "RPC_INTERNAL_ERROR",
    "RPC_INVALID_PARAMS",
    "RPC_INVALID_REQUEST",
    "RPC_METHOD_NOT_FOUND",
    "RPC_NOT_FOUND",
    "RPC_PARSE_ERROR",
    "RPC_UNAUTHORIZED",
    "STREAM_CRASHED",
    "STREAM_SETUP_FAILED_PRECONDITION",
    "STREAM_SETUP_INVALID_ARGUMENT",
    "STREAM_SETUP_PERMISSION_DENIED",
    "TASK_NOT_FOUND",
    "UNAUTHORIZED",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "AgentCardError",
    "ProtocolError",
    "RpcRequestError",
    "handler_error_text",
]

# --- Backend error codes (`code` in HTTP error bodies, `error.data.code` in JSON-RPC) ---------
API_KEY_INVALID: Final = "API_KEY_INVALID"
"""The API key is unknown or revoked; fatal for the agent."""
REFRESH_TOKEN_INVALID: Final = "REFRESH_TOKEN_INVALID"
"""The refresh token is unknown or rotated away; the caller re-connects / re-bootstraps."""
AGENT_FORCED_OFFLINE: Final = "AGENT_FORCED_OFFLINE"
"""An administrator disabled the agent; it must not reconnect."""
BILLING_MODE_MISMATCH: Final = "BillingModeMismatch"
"""`params.billingMode` differs from the agent's registered mode; details ``{expected, got}``."""
EMBEDDED_JWT_REVOKED: Final = "EMBEDDED_JWT_REVOKED"
EMBEDDED_JWT_LOGOUT: Final = "EMBEDDED_JWT_LOGOUT"
EMBEDDED_JWT_KILLED: Final = "EMBEDDED_JWT_KILLED"
EMBEDDED_JWT_SCOPE_DRIFT: Final = "EMBEDDED_JWT_SCOPE_DRIFT"
AGENT_OUT_OF_SCOPE: Final = "AGENT_OUT_OF_SCOPE"

AUTH_REFRESH_RETRYABLE_CODES: Final = frozenset(
    {
        EMBEDDED_JWT_REVOKED,
        EMBEDDED_JWT_LOGOUT,
        EMBEDDED_JWT_KILLED,
        EMBEDDED_JWT_SCOPE_DRIFT,
        AGENT_OUT_OF_SCOPE,
    }
)
"""`error.data.code` values after which an RPC caller refreshes its token once and retries."""

# Codes of our own local network (the spec names none for these cases).
UNAUTHORIZED: Final = "UNAUTHORIZED"
"""Missing, malformed or expired bearer credential."""
FORBIDDEN: Final = "FORBIDDEN"
"""Authenticated, but not allowed to touch this task or agent."""
INVALID_REQUEST: Final = "INVALID_REQUEST"
"""The request body or params are malformed; the message says which field."""
TASK_NOT_FOUND: Final = "TASK_NOT_FOUND"
AGENT_NOT_FOUND: Final = "AGENT_NOT_FOUND"

# --- Stream-setup handshake failure codes (`error.code` in the 403-carried payload) ----------
STREAM_SETUP_INVALID_ARGUMENT: Final = "InvalidArgument"
"""A required stream_setup field is missing or ill-typed (named by the spec)."""
STREAM_SETUP_PERMISSION_DENIED: Final = "PermissionDenied"
"""The publisher may not open streams for this task (our choice of name)."""
STREAM_SETUP_FAILED_PRECONDITION: Final = "FailedPrecondition"
"""The task is terminal or did not negotiate streaming (our choice of name)."""

# --- SDK-generated `error` texts of `terminal state:"failed"` events -------------------------
UNSUPPORTED_PROTOCOL_VERSION: Final = "unsupported_protocol_version"
INVALID_START_TASK: Final = "invalid_start_task"
AGENT_AT_CAPACITY: Final = "agent_at_capacity"
STREAM_CRASHED: Final = "stream_crashed"

# --- JSON-RPC 2.0 numeric codes (`error.code`) -------------------------------------------------
RPC_PARSE_ERROR: Final = -32700
"""The body is not valid JSON."""
RPC_INVALID_REQUEST: Final = -32600
"""The body is JSON but not a JSON-RPC 2.0 request object."""
RPC_METHOD_NOT_FOUND: Final = -32601
RPC_INVALID_PARAMS: Final = -32602
RPC_INTERNAL_ERROR: Final = -32603
# Application codes, our choice, inside the range JSON-RPC reserves for servers (-32000..-32099).
RPC_UNAUTHORIZED: Final = -32001
"""Credential missing/invalid/revoked (`data.code` says which, e.g. EMBEDDED_JWT_REVOKED)."""
RPC_FORBIDDEN: Final = -32003
"""Authenticated but not permitted (e.g. another user's task, AGENT_OUT_OF_SCOPE)."""
RPC_NOT_FOUND: Final = -32004
"""The task or agent does not exist (`data.code` TASK_NOT_FOUND / AGENT_NOT_FOUND)."""
RPC_CONFLICT: Final = -32009
"""The task's state forbids the operation (e.g. pause a terminal task)."""
RPC_BILLING_MODE_MISMATCH: Final = -32010
"""`data.code` is BillingModeMismatch, `data.details` is ``{expected, got}``."""
RPC_AGENT_UNAVAILABLE: Final = -32030
"""No instance of the agent is online to take the task."""


class ProtocolError(ValueError):
    """A wire document, channel name or identifier does not have the shape the protocol needs.

    ``message_type`` and ``task_id`` are filled in when known, so a receiver can still answer
    a broken StartTask with a ``terminal failed invalid_start_task`` event.
    """

    def __init__(
        self, message: str, *, message_type: str | None = None, task_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message_type = message_type
        self.task_id = task_id


class AgentCardError(ProtocolError):
    """An agent card breaks a rule of protocol §9.9.

    ``path`` is a JSON path such as ``io.inputs[0].maxSizeBytes`` (empty for the whole card);
    ``str(err)`` is ``"<path>: <reason>"`` so a CLI can prefix the file name.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


class RpcRequestError(ProtocolError):
    """A JSON-RPC request cannot be served as sent.

    ``rpc_code`` is the JSON-RPC error code to answer with (-32600 invalid request, -32602
    invalid params) and ``request_id`` the request's id when it could be read (else None).
    """

    def __init__(self, message: str, *, rpc_code: int, request_id: str | int | None) -> None:
        super().__init__(message)
        self.rpc_code = rpc_code
        self.request_id = request_id


def handler_error_text(exc: BaseException) -> str:
    """Return the `error` text of a failed terminal for a handler exception.

    ``<ClassName>: <text>`` (``KeyError: 'txt'``: the text alone of a KeyError is just the
    key), or ``Agent instance error (<ClassName>)`` when that text is empty. Never the
    traceback: it may hold secrets, and the agent's log has it.
    """
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else f"Agent instance error ({name})"
