"""The realtime server's error table: every failure maps to PubNub's own status and body.

Routes raise :class:`RealtimeError`; one middleware turns it into the response, so no
route builds error bodies by hand and bad input never reaches a 500.
"""

from __future__ import annotations

from typing import Any

from blocks_devnet.realtime.access_tokens import (
    TokenError,
    forbidden_body,
    invalid_signature_body,
    token_error_body,
)


class RealtimeError(Exception):
    """A request the server refuses, with the exact HTTP status and JSON body to send."""

    def __init__(self, status: int, body: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def service_error(status: int, message: str, service: str) -> RealtimeError:
    """PubNub's common ``{"status","message","error","service"}`` error body."""
    return RealtimeError(
        status, {"status": status, "message": message, "error": True, "service": service}
    )


def invalid_subscribe_key() -> RealtimeError:
    return service_error(400, "Invalid Subscribe Key", "Access Manager")


def bad_request(message: str, service: str = "Balancer") -> RealtimeError:
    return service_error(400, message, service)


def not_found(message: str = "Not Found", service: str = "Balancer") -> RealtimeError:
    return service_error(404, message, service)


def method_not_allowed(method: str) -> RealtimeError:
    return service_error(405, f"Method {method} is not allowed on this endpoint", "Balancer")


def publish_error(status: int, reason: str, timetoken: int) -> RealtimeError:
    """Publish, fire and signal answer errors as ``[0, "<reason>", "<tt>"]``."""
    return RealtimeError(status, [0, reason, str(timetoken)])


def forbidden(channels: list[str], groups: list[str] | None = None) -> RealtimeError:
    """The legacy Access Manager 403 body the client's fixtures show."""
    return RealtimeError(403, forbidden_body(channels, groups or ()))


def invalid_signature() -> RealtimeError:
    return RealtimeError(403, invalid_signature_body())


#: The title of a revoked token's error (access.TokenRevokedError; not imported: a cycle).
_REVOKED_TITLE = "Token is revoked"


def token_rejected(error: TokenError) -> RealtimeError:
    """A token that is malformed, forged or expired (newer authz error shape), or revoked
    (the real service answers that one in its flat shape, recorded in the client's fixtures)."""
    if error.title == _REVOKED_TITLE:
        body = {"error": True, "status": 403, "service": "Access Manager", "message": error.title}
        return RealtimeError(403, body)
    return RealtimeError(403, token_error_body(error))
