"""Access Manager enforcement: the one gate every auth-required route goes through."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from blocks_devnet.realtime import access_tokens
from blocks_devnet.realtime.errors import forbidden, invalid_signature, token_rejected
from blocks_devnet.realtime.http import RealtimeRequest
from blocks_devnet.realtime.signing import verify_signature
from blocks_devnet.store.database import Database, RowQueue

logger = logging.getLogger(__name__)

READ = access_tokens.READ
WRITE = access_tokens.WRITE
MANAGE = access_tokens.MANAGE
DELETE = access_tokens.DELETE
GET = access_tokens.GET

_REVOKED_SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked_tokens (
    subscribe_key TEXT NOT NULL,
    token TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (subscribe_key, token)
);
"""


#: Verified grants kept in memory (a few per active task).
VERIFIED_CACHE_SIZE = 8192


class TokenRevokedError(access_tokens.TokenError):
    """The token was revoked (revoke_token, or the backend ended the task it granted)."""

    title = "Token is revoked"

    def __init__(self) -> None:
        super().__init__("token_revoked", "The token was revoked; request a new one.")


class AccessGate:
    """Checks signatures and tokens; remembers revoked tokens across restarts."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.ensure_schema(_REVOKED_SCHEMA)
        # Verifying a token costs a CBOR round trip and an HMAC; every request of a task
        # carries the same few tokens, so verified grants are kept (expiry still checked).
        self._verified: dict[tuple[str, str], access_tokens.TokenGrant] = {}
        # Allowed (token, permission, uuid, channels) checks: a task's requests repeat the
        # same one. Only allows are kept; revocation and expiry are checked before use.
        self._allowed: dict[tuple[object, ...], None] = {}
        self._revoked: set[tuple[str, str]] = set()
        self._revoked_rows = RowQueue(
            db,
            "revoked_tokens",
            "INSERT OR IGNORE INTO revoked_tokens (subscribe_key, token, revoked_at, expires_at)"
            " VALUES (?,?,?,?)",
        )
        self._add_expiry_column()
        self.prune_revoked(time.time())
        self._revoked.update(
            (row["subscribe_key"], row["token"])
            for row in db.query("SELECT subscribe_key, token FROM revoked_tokens")
        )

    def _add_expiry_column(self) -> None:
        # Data directories from before revocations were pruned lack the column.
        columns = {row["name"] for row in self._db.query("PRAGMA table_info(revoked_tokens)")}
        if "expires_at" in columns:
            return
        with self._db.transaction():
            self._db.execute("ALTER TABLE revoked_tokens ADD COLUMN expires_at INTEGER")
            for row in self._db.query("SELECT subscribe_key, token FROM revoked_tokens"):
                self._db.execute(
                    "UPDATE revoked_tokens SET expires_at=? WHERE subscribe_key=? AND token=?",
                    (access_tokens.token_expiry(row["token"]), row["subscribe_key"], row["token"]),
                )

    def prune_revoked(self, now: float) -> int:
        """Forget revocations of tokens that have expired (they are refused anyway), so the
        list does not grow for ever; returns how many were dropped."""
        rows = self._db.query(
            "SELECT subscribe_key, token FROM revoked_tokens WHERE expires_at <= ?", (int(now),)
        )
        if not rows:
            return 0
        self._db.execute("DELETE FROM revoked_tokens WHERE expires_at <= ?", (int(now),))
        for row in rows:
            self._revoked.discard((row["subscribe_key"], row["token"]))
        return len(rows)

    def verify_signature(self, req: RealtimeRequest, body: bytes) -> None:
        """Mark a correctly signed request privileged; a wrong signature is a 403."""
        if "signature" not in req.query:
            return
        ok = verify_signature(
            method=req.request.method,
            raw_path=req.request.raw_path.split("?", 1)[0],
            query=req.query_pairs,
            body=body,
            publish_key=req.keyset.publish_key,
            subscribe_key=req.keyset.subscribe_key,
            secret_key=req.keyset.secret_key,
        )
        if not ok:
            raise invalid_signature()
        req.signed = True

    def revoke(self, subscribe_key: str, token: str) -> None:
        self._revoked.add((subscribe_key, token))
        grant = self._verified.pop((subscribe_key, token), None)
        # A verified grant knows its expiry: no need to decode the token again.
        expiry = access_tokens.token_expiry(token) if grant is None else grant.expires_at
        # Checked in memory; the row is for restarts, so it goes with the next commit.
        self._revoked_rows.add((subscribe_key, token, int(time.time()), expiry))

    def is_revoked(self, subscribe_key: str, token: str) -> bool:
        return (subscribe_key, token) in self._revoked

    def grant_for(self, req: RealtimeRequest) -> access_tokens.TokenGrant:
        """The request's verified token grant, or a 403 saying what is wrong."""
        if req.auth is None:
            raise forbidden([])
        if self.is_revoked(req.keyset.subscribe_key, req.auth):
            raise token_rejected(TokenRevokedError())
        key = (req.keyset.subscribe_key, req.auth)
        now = time.time()
        grant = self._verified.get(key)
        if grant is None:
            try:
                grant = access_tokens.verify_token(req.auth, req.keyset.secret_key, now)
            except access_tokens.TokenError as exc:
                raise token_rejected(exc) from None
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                # Drop the oldest entry (dicts keep insertion order).
                del self._verified[next(iter(self._verified))]
            self._verified[key] = grant
        elif now >= grant.expires_at:
            del self._verified[key]
            raise token_rejected(
                access_tokens.TokenExpiredError(
                    f"the token expired at unix time {grant.expires_at}; request a new one"
                )
            )
        return grant

    def require(
        self,
        req: RealtimeRequest,
        *,
        channels: Iterable[str] = (),
        groups: Iterable[str] = (),
        permission: int,
    ) -> None:
        """Allow the request or raise PubNub's 403 naming the denied channels and groups."""
        if not req.keyset.access_enabled or req.signed:
            return
        names = list(channels)
        group_names = list(groups)
        if req.auth is None:
            raise forbidden(names, group_names)
        grant = self.grant_for(req)
        # None (never a name) keeps a group apart from a channel of the same name.
        key = (req.keyset.subscribe_key, req.auth, permission, req.uuid, *names, None, *group_names)
        if key in self._allowed:
            return
        denied = access_tokens.denied_resources(
            grant, channels=names, groups=group_names, permission=permission, uuid=req.uuid
        )
        if denied.channels or denied.groups:
            raise forbidden(list(denied.channels), list(denied.groups))
        if len(self._allowed) >= VERIFIED_CACHE_SIZE:
            del self._allowed[next(iter(self._allowed))]
        self._allowed[key] = None

    def require_token(self, req: RealtimeRequest) -> None:
        """For endpoints that need a valid token but no particular channel."""
        if not req.keyset.access_enabled or req.signed:
            return
        self.grant_for(req)
