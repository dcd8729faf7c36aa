"""Access Manager enforcement: the one gate every auth-required route goes through."""

from __future__ import annotations

import hashlib
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

# A revocation is kept as a 16-byte digest of keyset and token, not the ~450-character
# token: it only has to be recognised (~1.1 KB of disk per task before, and as much memory).
_REVOKED_SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked_token_digests (
    digest BLOB PRIMARY KEY,
    expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS revoked_token_digests_by_expiry
    ON revoked_token_digests (expires_at);
"""
#: The table of data dirs from before digests (whole tokens); migrated at start.
_OLD_REVOKED_TABLE = "revoked_tokens"


#: Verified grants kept in memory (a few per active task).
VERIFIED_CACHE_SIZE = 8192


def revocation_digest(subscribe_key: str, token: str) -> bytes:
    """What a revocation of ``token`` on a keyset is remembered by (16 bytes of BLAKE2b)."""
    return hashlib.blake2b(
        token.encode("utf-8", "surrogatepass"), digest_size=16, key=subscribe_key.encode()[:64]
    ).digest()


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
        # Digests of revoked tokens not expired yet (bounded: expired ones are forgotten).
        self._revoked: set[bytes] = set()
        self._revoked_rows = RowQueue(
            db,
            "revoked_token_digests",
            "INSERT OR IGNORE INTO revoked_token_digests (digest, expires_at) VALUES (?,?)",
        )
        self._migrate_whole_tokens()
        self.prune_revoked(time.time())
        self._revoked.update(
            row["digest"] for row in db.query("SELECT digest FROM revoked_token_digests")
        )

    def _migrate_whole_tokens(self) -> None:
        """Move revocations kept as whole tokens (data dirs from before digests) over."""
        found = self._db.query_one(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (_OLD_REVOKED_TABLE,)
        )
        if found is None:
            return
        with self._db.transaction():
            rows = self._db.query(f"SELECT subscribe_key, token FROM {_OLD_REVOKED_TABLE}")
            self._db.executemany(
                "INSERT OR IGNORE INTO revoked_token_digests (digest, expires_at) VALUES (?,?)",
                [
                    (
                        revocation_digest(r["subscribe_key"], r["token"]),
                        access_tokens.token_expiry(r["token"]),
                    )
                    for r in rows
                ],
            )
            self._db.execute(f"DROP TABLE {_OLD_REVOKED_TABLE}")

    def prune_revoked(self, now: float, limit: int | None = None) -> int:
        """Forget revocations of tokens that have expired (they are refused anyway), at
        most ``limit`` of them, so the list does not grow for ever; returns how many."""
        rows = self._db.query(
            "SELECT digest FROM revoked_token_digests WHERE expires_at <= ?"
            " ORDER BY expires_at LIMIT ?",
            (int(now), -1 if limit is None else limit),
        )
        if not rows:
            return 0
        digests = [row["digest"] for row in rows]
        self._db.executemany(
            "DELETE FROM revoked_token_digests WHERE digest=?", [(d,) for d in digests]
        )
        self._revoked.difference_update(digests)
        return len(digests)

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
        digest = revocation_digest(subscribe_key, token)
        self._revoked.add(digest)
        grant = self._verified.pop((subscribe_key, token), None)
        # A verified grant knows its expiry: no need to decode the token again.
        expiry = access_tokens.token_expiry(token) if grant is None else grant.expires_at
        # Checked in memory; the row is for restarts, so it goes with the next commit.
        self._revoked_rows.add((digest, expiry))

    def is_revoked(self, subscribe_key: str, token: str) -> bool:
        return revocation_digest(subscribe_key, token) in self._revoked

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
