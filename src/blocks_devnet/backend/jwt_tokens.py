"""Signed, expiring access JWTs (HS256) for consumers and agent instances."""

from __future__ import annotations

import math
import secrets
import time
import uuid
from typing import Any

import jwt

from blocks_devnet.backend.errors import TOKEN_EXPIRED, TOKEN_INVALID, unauthorized
from blocks_devnet.backend.principal import Principal
from blocks_devnet.store.database import Database

ISSUER = "blocks-devnet"
_ALGORITHM = "HS256"
#: Verified tokens remembered (a client sends the same token on every request for its
#: lifetime; decoding and checking the HMAC again costs ~0.2 ms per request).
VERIFIED_CACHE_SIZE = 1024

_SETTINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def load_or_create_secret(db: Database, name: str) -> str:
    """A random secret kept in the settings table, so tokens survive a restart."""
    db.ensure_schema(_SETTINGS_SCHEMA)
    row = db.query_one("SELECT value FROM settings WHERE name=?", (name,))
    if row is not None:
        return str(row["value"])
    value = secrets.token_urlsafe(48)
    db.execute("INSERT INTO settings (name, value) VALUES (?,?)", (name, value))
    return value


class JwtIssuer:
    """Issues and verifies access JWTs; verification failures are HTTP 401s."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        # token → (principal, exp); only tokens that passed every check get in.
        self._verified: dict[str, tuple[Principal, float]] = {}

    def issue(self, principal: Principal, ttl_seconds: int) -> str:
        now = time.time()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": principal.user_id,
            "org": principal.org_id,
            "kind": principal.kind,
            "iat": int(now),
            # Whole seconds, rounded up: a token never lives shorter than the expiresIn
            # it is announced with (rounding down cut a 1 s token to a few ms).
            "exp": math.ceil(now) + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if principal.agent_id is not None:
            claims["agentId"] = principal.agent_id
        if principal.agent_name is not None:
            claims["agentName"] = principal.agent_name
        if principal.instance_id is not None:
            claims["instanceId"] = principal.instance_id
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The token's principal; raises a 401 BackendError for expired/forged/garbage tokens."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires_at = cached
            if time.time() < expires_at:
                return principal
            del self._verified[token]
            raise unauthorized("Access token expired: refresh it and retry.", TOKEN_EXPIRED)
        principal, expires_at = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            # Drop the oldest entry (dicts keep insertion order).
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (principal, expires_at)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "org", "kind"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized(
                "Access token expired: refresh it and retry.", TOKEN_EXPIRED
            ) from None
        except jwt.PyJWTError:
            raise unauthorized(
                "Access token invalid: obtain a new one with your API key.", TOKEN_INVALID
            ) from None
        kind = claims.get("kind")
        if kind not in ("consumer", "agent") or not isinstance(claims.get("sub"), str):
            raise unauthorized("Access token invalid: unknown token kind.", TOKEN_INVALID)
        principal = Principal(
            user_id=claims["sub"],
            org_id=str(claims["org"]),
            kind=kind,
            agent_id=claims.get("agentId"),
            agent_name=claims.get("agentName"),
            instance_id=claims.get("instanceId"),
        )
        # PyJWT treats a token as expired from ``exp`` on.
        return principal, float(claims["exp"])
