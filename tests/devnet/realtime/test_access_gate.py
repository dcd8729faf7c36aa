"""AccessGate's verified-token cache never outlives a token's expiry or its revocation."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from blocks_devnet.realtime import access
from blocks_devnet.realtime.access import AccessGate
from blocks_devnet.realtime.access_tokens import (
    READ,
    WRITE,
    TokenGrant,
    issue_token,
    token_expiry,
)
from blocks_devnet.realtime.errors import RealtimeError
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.store.database import Database

KEYSET = Keyset.generate("gate", access_enabled=True)


def request_with(token: str) -> Any:
    return SimpleNamespace(auth=token, keyset=KEYSET, uuid="u", signed=False)


def make_token(ttl_minutes: int = 1) -> str:
    grant = TokenGrant(issued_at=int(time.time()), ttl_minutes=ttl_minutes, channels={"c": READ})
    return issue_token(grant, KEYSET.secret_key)


def test_cached_grant_is_rejected_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = AccessGate(Database(None))
    token = make_token(ttl_minutes=1)
    assert gate.grant_for(request_with(token)).channels == {"c": READ}
    later = time.time() + 61
    monkeypatch.setattr(access.time, "time", lambda: later)
    with pytest.raises(RealtimeError) as info:
        gate.grant_for(request_with(token))
    assert info.value.status == 403
    assert info.value.body["error"]["message"] == "Token is expired"


def test_cached_grant_is_rejected_once_revoked() -> None:
    gate = AccessGate(Database(None))
    token = make_token()
    gate.grant_for(request_with(token))
    gate.revoke(KEYSET.subscribe_key, token)
    with pytest.raises(RealtimeError) as info:
        gate.grant_for(request_with(token))
    # The real service's flat shape for a revoked token (the official client's fixtures).
    assert info.value.body == {
        "error": True,
        "status": 403,
        "service": "Access Manager",
        "message": "Token is revoked",
    }


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "VERIFIED_CACHE_SIZE", 3)
    gate = AccessGate(Database(None))
    tokens = [make_token(ttl_minutes=i + 1) for i in range(5)]
    for token in tokens:
        gate.grant_for(request_with(token))
    assert len(gate._verified) == 3


def _revoked_rows(db: Database) -> dict[bytes, int | None]:
    """Digest → expiry of every stored revocation (tokens are stored as digests only)."""
    rows = db.query("SELECT digest, expires_at FROM revoked_token_digests")
    return {row["digest"]: row["expires_at"] for row in rows}


def _digest(token: str) -> bytes:
    return access.revocation_digest(KEYSET.subscribe_key, token)


def test_revocations_are_forgotten_once_their_token_expired() -> None:
    db = Database(None)
    gate = AccessGate(db)
    short, long = make_token(ttl_minutes=1), make_token(ttl_minutes=60)
    gate.revoke(KEYSET.subscribe_key, short)
    gate.revoke(KEYSET.subscribe_key, long)
    assert gate.prune_revoked(time.time()) == 0
    assert gate.prune_revoked(time.time() + 120) == 1
    assert not gate.is_revoked(KEYSET.subscribe_key, short)
    assert gate.is_revoked(KEYSET.subscribe_key, long)
    assert list(_revoked_rows(db)) == [_digest(long)]


def test_an_unreadable_revoked_token_is_kept() -> None:
    db = Database(None)
    gate = AccessGate(db)
    gate.revoke(KEYSET.subscribe_key, "not-a-token")
    assert gate.prune_revoked(time.time() + 10**9) == 0
    assert gate.is_revoked(KEYSET.subscribe_key, "not-a-token")


def test_a_data_directory_from_before_digests_is_upgraded_and_pruned(tmp_path: Any) -> None:
    path = tmp_path / "db.sqlite3"
    old = Database(path)
    old.ensure_schema(
        "CREATE TABLE revoked_tokens (subscribe_key TEXT NOT NULL, token TEXT NOT NULL,"
        " revoked_at INTEGER NOT NULL, PRIMARY KEY (subscribe_key, token));"
    )
    expired = issue_token(
        TokenGrant(issued_at=int(time.time()) - 3600, ttl_minutes=1, channels={"c": READ}),
        KEYSET.secret_key,
    )
    live = make_token(ttl_minutes=60)
    for token in (expired, live):
        old.execute(
            "INSERT INTO revoked_tokens (subscribe_key, token, revoked_at) VALUES (?,?,?)",
            (KEYSET.subscribe_key, token, 1),
        )
    old.close()

    db = Database(path)
    gate = AccessGate(db)
    assert not gate.is_revoked(KEYSET.subscribe_key, expired)
    assert gate.is_revoked(KEYSET.subscribe_key, live)
    [(digest, expires_at)] = _revoked_rows(db).items()
    assert digest == _digest(live) and expires_at is not None and expires_at > time.time()
    assert db.query_one("SELECT 1 FROM sqlite_master WHERE name='revoked_tokens'") is None
    db.close()


@pytest.mark.parametrize("garbage", ["", "%%%", "AAAA", "oA==", "x" * 40_000])
def test_token_expiry_reads_tokens_and_nothing_else(garbage: str) -> None:
    grant = TokenGrant(issued_at=1_700_000_000, ttl_minutes=30, channels={"c": READ})
    assert token_expiry(issue_token(grant, KEYSET.secret_key)) == grant.expires_at
    assert token_expiry(garbage) is None


def test_a_revocation_written_behind_survives_a_clean_restart(tmp_path: Any) -> None:
    import asyncio

    path = tmp_path / "gate.sqlite3"
    db = Database(path)
    gate = AccessGate(db)
    token = make_token(ttl_minutes=60)

    async def scenario() -> None:
        db.batch_commits(asyncio.get_running_loop(), interval_s=60)
        gate.revoke(KEYSET.subscribe_key, token)  # queued for the commit
        assert gate.is_revoked(KEYSET.subscribe_key, token)
        assert list(_revoked_rows(db)) == [_digest(token)]  # a read sees the queued row
        db.close()

    asyncio.run(scenario())
    again = AccessGate(Database(path))
    assert again.is_revoked(KEYSET.subscribe_key, token)


def _denied(gate: AccessGate, token: str, channel: str, permission: int) -> bool:
    try:
        gate.require(request_with(token), channels=[channel], permission=permission)
    except RealtimeError as exc:
        assert exc.status == 403
        return True
    return False


def test_a_remembered_allow_still_yields_to_revocation_and_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = AccessGate(Database(None))
    revoked, expiring = make_token(), make_token(ttl_minutes=1)
    for token in (revoked, expiring):
        assert not _denied(gate, token, "c", READ)
        assert not _denied(gate, token, "c", READ)  # the remembered allow
    gate.revoke(KEYSET.subscribe_key, revoked)
    assert _denied(gate, revoked, "c", READ)
    later = time.time() + 61
    monkeypatch.setattr(access.time, "time", lambda: later)
    assert _denied(gate, expiring, "c", READ)


def test_a_remembered_allow_covers_only_its_channel_permission_and_uuid() -> None:
    gate = AccessGate(Database(None))
    token = make_token()
    assert not _denied(gate, token, "c", READ)
    assert _denied(gate, token, "other", READ)
    assert _denied(gate, token, "c", WRITE)
    bound = issue_token(
        TokenGrant(
            issued_at=int(time.time()), ttl_minutes=1, channels={"c": READ}, authorized_uuid="u"
        ),
        KEYSET.secret_key,
    )
    assert not _denied(gate, bound, "c", READ)
    stranger = SimpleNamespace(auth=bound, keyset=KEYSET, uuid="someone-else", signed=False)
    with pytest.raises(RealtimeError):
        gate.require(stranger, channels=["c"], permission=READ)


def test_a_revocation_takes_its_expiry_from_the_verified_grant() -> None:
    db = Database(None)
    gate = AccessGate(db)
    verified, unseen = make_token(ttl_minutes=7), make_token(ttl_minutes=9)
    gate.grant_for(request_with(verified))
    gate.revoke(KEYSET.subscribe_key, verified)
    gate.revoke(KEYSET.subscribe_key, unseen)  # never verified: its expiry is decoded
    assert _revoked_rows(db) == {
        _digest(verified): token_expiry(verified),
        _digest(unseen): token_expiry(unseen),
    }
