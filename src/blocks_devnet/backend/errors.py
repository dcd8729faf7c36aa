"""The backend's error table: each refusal maps to one HTTP status and one wire code.

Routes raise :class:`BackendError`; the middleware answers
``{"error": <sentence>, "code": <CODE>, "message": <sentence>}`` (protocol.md §5.1 reads
``error``/``code``, the registry client reads ``message``). JSON-RPC errors use their own
envelope (see ``tasks/rpc.py``) but are built from the same exception.
"""

from __future__ import annotations

from typing import Any

# Wire codes the SDK acts on (protocol.md §5) plus generic ones of our own.
BAD_REQUEST = "BAD_REQUEST"
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
UNSUPPORTED_PROTOCOL_VERSION = "UNSUPPORTED_PROTOCOL_VERSION"
API_KEY_INVALID = "API_KEY_INVALID"
REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"
AGENT_FORCED_OFFLINE = "AGENT_FORCED_OFFLINE"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_INVALID = "TOKEN_INVALID"


class BackendError(Exception):
    """A refused backend request: HTTP status, wire code, a sentence saying what to do."""

    def __init__(
        self, status: int, code: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


def bad_request(message: str, *, details: dict[str, Any] | None = None) -> BackendError:
    return BackendError(400, BAD_REQUEST, message, details=details)


def unauthorized(message: str, code: str = UNAUTHORIZED) -> BackendError:
    return BackendError(401, code, message)


def forbidden(message: str, code: str = FORBIDDEN) -> BackendError:
    return BackendError(403, code, message)


def not_found(message: str) -> BackendError:
    return BackendError(404, NOT_FOUND, message)
