"""Dashboard sign-in: an API key becomes a server-side session behind an opaque cookie.

The cookie carries only a random session id (HttpOnly, SameSite=Strict, Path=/); the key
stays in server memory and is checked again on every request, so a revoked key signs its
sessions out at once. State-changing requests also need the session's CSRF token in a
header (SameSite alone does not cover every browser). Sessions expire and are bounded.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from blocks_devnet.backend.identity import IdentityStore
from blocks_devnet.backend.principal import Principal

__all__ = ["COOKIE_NAME", "CSRF_HEADER", "Session", "SessionStore"]

COOKIE_NAME: Final = "blocks_dashboard"
CSRF_HEADER: Final = "X-Dashboard-CSRF"
#: How long a sign-in lasts without being renewed (seconds).
SESSION_TTL_SECONDS: Final = 8 * 3600
#: Sessions kept at once; the oldest is forgotten beyond this (memory stays bounded).
MAX_SESSIONS: Final = 10_000
#: Session ids are 32 random bytes, URL-safe base64 (43 characters).
_SESSION_ID_LENGTH: Final = 43


@dataclass(frozen=True)
class Session:
    session_id: str
    api_key: str
    csrf_token: str
    expires_at: float


class SessionStore:
    """Sessions by id, in memory (a restart signs everyone out, which is fine locally)."""

    def __init__(
        self,
        identity: IdentityStore,
        *,
        ttl_seconds: float = SESSION_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._identity = identity
        self._ttl = ttl_seconds
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def sign_in(self, api_key: str) -> Session | None:
        """A new session for a valid API key; None for an unknown or revoked key."""
        if self._identity.authenticate_api_key(api_key) is None:
            return None
        session = Session(
            session_id=secrets.token_urlsafe(32),
            api_key=api_key,
            csrf_token=secrets.token_urlsafe(24),
            expires_at=self._clock() + self._ttl,
        )
        self._sessions[session.session_id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def sign_out(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def lookup(self, session_id: str | None) -> tuple[Session, Principal] | None:
        """The live session and its principal, or None (absent, forged, expired, revoked)."""
        if session_id is None or len(session_id) != _SESSION_ID_LENGTH:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        identity = self._identity.authenticate_api_key(session.api_key)
        if identity is None:
            del self._sessions[session_id]
            return None
        # The same principal an API key gets on the task API (authn.authenticate).
        return session, Principal(user_id=identity[0], org_id=identity[1], kind="consumer")

    @staticmethod
    def csrf_ok(session: Session, request: web.Request) -> bool:
        sent = request.headers.get(CSRF_HEADER, "")
        return hmac.compare_digest(sent.encode(), session.csrf_token.encode())

    def set_cookie(self, response: web.StreamResponse, session: Session, *, secure: bool) -> None:
        """The session cookie (``Secure`` too when the network is served over HTTPS)."""
        response.set_cookie(
            COOKIE_NAME,
            session.session_id,
            max_age=int(self._ttl),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    @staticmethod
    def clear_cookie(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE_NAME, path="/")
