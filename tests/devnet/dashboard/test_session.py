"""Dashboard sessions: expiry, revocation, bounds (the store alone, on a real database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocks_devnet.backend.identity import IdentityStore
from blocks_devnet.dashboard import session as session_module
from blocks_devnet.dashboard.session import SessionStore
from blocks_devnet.store.database import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def identity() -> Iterator[IdentityStore]:
    db = Database(None)
    try:
        yield IdentityStore(db)
    finally:
        db.close()


def test_a_session_expires_after_its_ttl(identity: IdentityStore) -> None:
    user_id, org_id, key = identity.create_user("expiring")
    clock = Clock()
    store = SessionStore(identity, ttl_seconds=60, clock=clock)
    session = store.sign_in(key)
    assert session is not None and key not in session.session_id
    found = store.lookup(session.session_id)
    assert found is not None and (found[1].user_id, found[1].org_id) == (user_id, org_id)
    clock.now += 61
    assert store.lookup(session.session_id) is None


def test_unknown_revoked_and_malformed(identity: IdentityStore) -> None:
    _user, _org, key = identity.create_user("revoked")
    store = SessionStore(identity)
    assert store.sign_in("bk_unknown") is None
    assert store.sign_in("not even a key") is None
    session = store.sign_in(key)
    assert session is not None
    assert store.lookup(None) is None
    assert store.lookup("short") is None
    identity.revoke_api_key(key)
    assert store.lookup(session.session_id) is None


def test_sessions_are_bounded(identity: IdentityStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "MAX_SESSIONS", 3)
    _user, _org, key = identity.create_user("many")
    store = SessionStore(identity)
    sessions = [store.sign_in(key) for _ in range(5)]
    assert all(s is not None for s in sessions)
    alive = [s for s in sessions if s is not None and store.lookup(s.session_id) is not None]
    assert alive == sessions[2:]
