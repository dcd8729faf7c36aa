"""Organisations, users, API keys and rotating refresh tokens of the local network.

Secrets are stored only as SHA-256 hashes (plus a short display prefix for API keys), with
one exception: the development API key is also kept in clear in the ``settings`` table so
``blocks devnet`` can print it again on every start. That is a convenience of a local,
single-developer network and must not be copied into anything that faces other people.

Every method is a few short SQLite statements on the caller's thread (the server's event
loop, or the ``blocks devnet keys create`` process, which opens the same WAL database).
Nothing is cached in memory, so a key created by another process works at once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass

from blocks_devnet.backend.principal import Principal, PrincipalKind
from blocks_devnet.store.database import Database

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "bk_"
#: Characters of an API key kept in clear for listing (``bk_`` + 8).
API_KEY_DISPLAY_CHARS = 11
#: The organisation that owns the built-in agents.
SYSTEM_ORG_ID = "org_blocks_system"
SYSTEM_USER_ID = "user_blocks_system"
DEV_USER_NAME = "developer"

_SETTING_DEV_ORG = "dev_org_id"
_SETTING_DEV_USER = "dev_user_id"
# Dev-only convenience: the clear dev key, so every start can print it again.
_SETTING_DEV_API_KEY = "dev_api_key"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    org_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(org_id),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    display_prefix TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(user_id),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(user_id),
    org_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    agent_id TEXT,
    agent_name TEXT,
    instance_id TEXT,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_family ON refresh_tokens (family_id);
"""


@dataclass(frozen=True)
class DevIdentity:
    """The development organisation, user and API key created on first start."""

    org_id: str
    user_id: str
    api_key: str


@dataclass(frozen=True)
class IssuedRefreshToken:
    """A freshly minted refresh token (shown once) and the principal it refreshes."""

    token: str
    principal: Principal


class RefreshTokenInvalid(Exception):
    """The refresh token is unknown, expired, revoked or already rotated away."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> int:
    return int(time.time())


def _new_id(prefix: str) -> str:
    # Ids end up in channel names (u.{orgId}.{taskId}): letters, digits and '_' only.
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _org_wide_reads(org_id: str) -> str:
    """The settings row marking an org whose one member holds org-wide read tokens."""
    return f"org_wide_reads:{org_id}"


class IdentityStore:
    """Orgs, users, API keys and refresh tokens in the shared database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.ensure_schema(_SCHEMA)
        # (org, user) pairs marked by sole_member_reads_org: marks are never undone.
        self._sole_members: set[tuple[str, str]] = set()

    # --- orgs and users -------------------------------------------------------------------

    def create_org(self, name: str, *, org_id: str | None = None) -> str:
        """Create an organisation and return its id."""
        org_id = org_id or _new_id("org")
        self._db.execute(
            "INSERT INTO orgs (org_id, name, created_at) VALUES (?,?,?)", (org_id, name, _now())
        )
        return org_id

    def org_exists(self, org_id: str) -> bool:
        return self._db.query_one("SELECT 1 FROM orgs WHERE org_id=?", (org_id,)) is not None

    def org_name(self, org_id: str) -> str | None:
        row = self._db.query_one("SELECT name FROM orgs WHERE org_id=?", (org_id,))
        return None if row is None else str(row["name"])

    def create_user(
        self, name: str, org_name: str | None = None, *, org_id: str | None = None
    ) -> tuple[str, str, str]:
        """Create a user with one API key; returns ``(user_id, org_id, api_key)``.

        The user gets a new organisation (named ``org_name`` or after the user) unless
        ``org_id`` names an existing one. Raises ValueError for an empty name or an unknown
        ``org_id``. All rows are written in one transaction.
        """
        if not name.strip():
            raise ValueError("user name must not be empty")
        user_id = _new_id("user")
        with self._db.transaction():
            if org_id is None:
                org_id = self.create_org(org_name or name)
            elif not self.org_exists(org_id):
                raise ValueError(f"organisation {org_id!r} does not exist")
            elif self._setting(_org_wide_reads(org_id)) is not None:
                raise ValueError(
                    f"organisation {org_id!r} is one user's: its read tokens read all its "
                    "task channels; create the user in an organisation of its own"
                )
            self._db.execute(
                "INSERT INTO users (user_id, org_id, name, created_at) VALUES (?,?,?,?)",
                (user_id, org_id, name, _now()),
            )
            api_key = self._insert_api_key(user_id)
        logger.info("created user %s (%s) in org %s", user_id, name, org_id)
        return user_id, org_id, api_key

    def sole_member_reads_org(self, org_id: str, user_id: str) -> bool:
        """Whether ``user_id`` is the only member of ``org_id``; if so, the org is marked as
        that user's for good (no one joins it any more), so a read token covering every
        task channel of the org never reaches another user's tasks."""
        if (org_id, user_id) in self._sole_members:
            return True
        with self._db.transaction():
            members = self._db.query("SELECT user_id FROM users WHERE org_id=? LIMIT 2", (org_id,))
            if [str(row["user_id"]) for row in members] != [user_id]:
                return False
            self._db.execute(
                "INSERT OR IGNORE INTO settings (name, value) VALUES (?,?)",
                (_org_wide_reads(org_id), user_id),
            )
        self._sole_members.add((org_id, user_id))
        return True

    def user_org(self, user_id: str) -> str | None:
        """The organisation of ``user_id``, or None if there is no such user."""
        row = self._db.query_one("SELECT org_id FROM users WHERE user_id=?", (user_id,))
        return None if row is None else str(row["org_id"])

    def ensure_system_identity(self) -> None:
        """Create the system organisation and user that own the built-in agents (idempotent)."""
        with self._db.transaction():
            if not self.org_exists(SYSTEM_ORG_ID):
                self.create_org("Blocks built-in agents", org_id=SYSTEM_ORG_ID)
            self._db.execute(
                "INSERT OR IGNORE INTO users (user_id, org_id, name, created_at) VALUES (?,?,?,?)",
                (SYSTEM_USER_ID, SYSTEM_ORG_ID, "system", _now()),
            )

    def ensure_dev_identity(self) -> DevIdentity:
        """The development org, user and API key: created on first call, then kept.

        The key is stored in clear in ``settings`` (dev-only convenience, see module doc).
        """
        org_id = self._setting(_SETTING_DEV_ORG)
        user_id = self._setting(_SETTING_DEV_USER)
        api_key = self._setting(_SETTING_DEV_API_KEY)
        if org_id and user_id and api_key and self.authenticate_api_key(api_key) is not None:
            return DevIdentity(org_id=org_id, user_id=user_id, api_key=api_key)
        user_id, org_id, api_key = self.create_user(DEV_USER_NAME, "Development")
        with self._db.transaction():
            for name, value in (
                (_SETTING_DEV_ORG, org_id),
                (_SETTING_DEV_USER, user_id),
                (_SETTING_DEV_API_KEY, api_key),
            ):
                self._db.execute(
                    "INSERT OR REPLACE INTO settings (name, value) VALUES (?,?)", (name, value)
                )
        logger.info("created the development identity (org %s, user %s)", org_id, user_id)
        return DevIdentity(org_id=org_id, user_id=user_id, api_key=api_key)

    def _setting(self, name: str) -> str | None:
        row = self._db.query_one("SELECT value FROM settings WHERE name=?", (name,))
        return None if row is None else str(row["value"])

    # --- API keys -------------------------------------------------------------------------

    def create_api_key(self, user_id: str) -> str:
        """Add an API key for an existing user; returns the key (shown only now)."""
        if self.user_org(user_id) is None:
            raise ValueError(f"user {user_id!r} does not exist")
        return self._insert_api_key(user_id)

    def _insert_api_key(self, user_id: str) -> str:
        api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        self._db.execute(
            "INSERT INTO api_keys (key_hash, display_prefix, user_id, created_at) VALUES (?,?,?,?)",
            (_hash(api_key), api_key[:API_KEY_DISPLAY_CHARS], user_id, _now()),
        )
        return api_key

    def authenticate_api_key(self, api_key: str) -> tuple[str, str] | None:
        """``(user_id, org_id)`` for a live API key, None for anything else (never raises)."""
        if not api_key.startswith(API_KEY_PREFIX) or len(api_key) > 512:
            return None
        try:
            row = self._db.query_one(
                "SELECT u.user_id, u.org_id FROM api_keys k JOIN users u ON u.user_id = k.user_id"
                " WHERE k.key_hash=? AND k.revoked_at IS NULL",
                (_hash(api_key),),
            )
        except sqlite3.Error:
            logger.exception("API key lookup failed")
            return None
        return None if row is None else (str(row["user_id"]), str(row["org_id"]))

    def revoke_api_key(self, api_key: str) -> bool:
        """Revoke a key; True if a live key was revoked."""
        cursor = self._db.execute(
            "UPDATE api_keys SET revoked_at=? WHERE key_hash=? AND revoked_at IS NULL",
            (_now(), _hash(api_key)),
        )
        return cursor.rowcount > 0

    def api_key_prefixes(self, user_id: str) -> list[str]:
        """Display prefixes of a user's live keys, oldest first."""
        rows = self._db.query(
            "SELECT display_prefix FROM api_keys WHERE user_id=? AND revoked_at IS NULL"
            " ORDER BY created_at",
            (user_id,),
        )
        return [str(r["display_prefix"]) for r in rows]

    # --- refresh tokens -------------------------------------------------------------------

    def issue_refresh_token(self, principal: Principal, ttl_seconds: int) -> str:
        """Start a new rotation family for ``principal``; returns the token (shown once)."""
        return self._insert_refresh_token(principal, ttl_seconds, uuid.uuid4().hex)

    def _insert_refresh_token(self, principal: Principal, ttl_seconds: int, family_id: str) -> str:
        token = "rt_" + secrets.token_urlsafe(32)
        self._db.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, org_id, kind, agent_id,"
            " agent_name, instance_id, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                _hash(token),
                family_id,
                principal.user_id,
                principal.org_id,
                principal.kind,
                principal.agent_id,
                principal.agent_name,
                principal.instance_id,
                _now() + ttl_seconds,
            ),
        )
        return token

    def peek_refresh_token(self, token: str) -> Principal | None:
        """The principal of a live refresh token without using it (None if not live)."""
        row = self._db.query_one("SELECT * FROM refresh_tokens WHERE token_hash=?", (_hash(token),))
        if (
            row is None
            or row["used_at"] is not None
            or row["revoked"]
            or row["expires_at"] < _now()
        ):
            return None
        return _principal_of(row)

    def rotate_refresh_token(self, token: str, ttl_seconds: int) -> IssuedRefreshToken:
        """Use ``token`` once: revoke it and issue its successor in the same family.

        Raises RefreshTokenInvalid for an unknown, expired or revoked token. Presenting a
        token that was already rotated revokes its whole family (it may have been stolen),
        so the legitimate holder must bootstrap again.
        """
        token_hash = _hash(token)
        problem: str | None = None
        with self._db.transaction():
            row = self._db.query_one(
                "SELECT * FROM refresh_tokens WHERE token_hash=?", (token_hash,)
            )
            if row is None:
                problem = "unknown refresh token"
            elif row["used_at"] is not None:
                # Kept (not rolled back): the reuse itself is what revokes the family.
                self._db.execute(
                    "UPDATE refresh_tokens SET revoked=1 WHERE family_id=?", (row["family_id"],)
                )
                logger.warning("rotated refresh token reused; revoked family of %s", row["user_id"])
                problem = "refresh token was already used"
            elif row["revoked"]:
                problem = "refresh token was revoked"
            elif row["expires_at"] < _now():
                problem = "refresh token expired"
            else:
                self._db.execute(
                    "UPDATE refresh_tokens SET used_at=? WHERE token_hash=?", (_now(), token_hash)
                )
                principal = _principal_of(row)
                successor = self._insert_refresh_token(
                    principal, ttl_seconds, str(row["family_id"])
                )
        if problem is not None:
            raise RefreshTokenInvalid(problem)
        return IssuedRefreshToken(token=successor, principal=principal)

    def revoke_refresh_family(self, token: str) -> None:
        """Revoke ``token`` and every token rotated from or into it."""
        row = self._db.query_one(
            "SELECT family_id FROM refresh_tokens WHERE token_hash=?", (_hash(token),)
        )
        if row is not None:
            self._db.execute(
                "UPDATE refresh_tokens SET revoked=1 WHERE family_id=?", (row["family_id"],)
            )


def _principal_of(row: sqlite3.Row) -> Principal:
    kind: PrincipalKind = "agent" if row["kind"] == "agent" else "consumer"
    return Principal(
        user_id=str(row["user_id"]),
        org_id=str(row["org_id"]),
        kind=kind,
        agent_id=row["agent_id"],
        agent_name=row["agent_name"],
        instance_id=row["instance_id"],
    )
