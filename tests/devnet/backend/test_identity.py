"""IdentityStore on an in-memory database: keys, dev identity, refresh-token rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_devnet.backend.identity import IdentityStore, RefreshTokenInvalid
from blocks_devnet.backend.principal import Principal
from blocks_devnet.store.database import Database


@pytest.fixture
def db() -> Iterator[Database]:
    database = Database(None)
    yield database
    database.close()


def test_api_keys_are_stored_hashed_with_a_display_prefix(db: Database) -> None:
    store = IdentityStore(db)
    user_id, org_id, key = store.create_user("ada")
    assert key.startswith("bk_") and len(key) > 40
    assert store.authenticate_api_key(key) == (user_id, org_id)
    stored = [tuple(r) for r in db.query("SELECT * FROM api_keys")]
    assert all(key not in (str(v) for v in row) for row in stored), "the key itself is never stored"
    assert store.api_key_prefixes(user_id) == [key[:11]]


def test_each_user_gets_its_own_org_unless_told(db: Database) -> None:
    store = IdentityStore(db)
    _, org_a, _ = store.create_user("a")
    _, org_b, _ = store.create_user("b")
    _, org_c, _ = store.create_user("c", org_id=org_a)
    assert org_a != org_b and org_c == org_a
    with pytest.raises(ValueError, match="does not exist"):
        store.create_user("d", org_id="org_missing")
    with pytest.raises(ValueError):
        store.create_user("  ")


def test_second_key_and_revocation(db: Database) -> None:
    store = IdentityStore(db)
    user_id, org_id, first = store.create_user("ada")
    second = store.create_api_key(user_id)
    assert store.revoke_api_key(first)
    assert store.authenticate_api_key(first) is None
    assert store.authenticate_api_key(second) == (user_id, org_id)
    assert not store.revoke_api_key(first)


def test_dev_identity_is_created_once_and_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first_db = Database(path)
    first = IdentityStore(first_db).ensure_dev_identity()
    assert IdentityStore(first_db).ensure_dev_identity() == first
    first_db.close()
    second_db = Database(path)
    try:
        assert IdentityStore(second_db).ensure_dev_identity() == first
    finally:
        second_db.close()


def test_refresh_tokens_rotate_once(db: Database) -> None:
    store = IdentityStore(db)
    user_id, org_id, _ = store.create_user("ada")
    principal = Principal(
        user_id=user_id,
        org_id=org_id,
        kind="agent",
        agent_id="agt_1",
        agent_name="a",
        instance_id="i",
    )
    token = store.issue_refresh_token(principal, 60)
    assert store.peek_refresh_token(token) == principal
    issued = store.rotate_refresh_token(token, 60)
    assert issued.principal == principal
    assert store.peek_refresh_token(token) is None
    with pytest.raises(RefreshTokenInvalid):
        store.rotate_refresh_token(token, 60)
    with pytest.raises(RefreshTokenInvalid):
        store.rotate_refresh_token(issued.token, 60)  # family revoked by the reuse


def test_expired_and_unknown_refresh_tokens_are_invalid(db: Database) -> None:
    store = IdentityStore(db)
    user_id, org_id, _ = store.create_user("ada")
    expired = store.issue_refresh_token(Principal(user_id, org_id, "consumer"), -1)
    with pytest.raises(RefreshTokenInvalid, match="expired"):
        store.rotate_refresh_token(expired, 60)
    with pytest.raises(RefreshTokenInvalid, match="unknown"):
        store.rotate_refresh_token("rt_nope", 60)


def test_an_org_whose_sole_member_reads_all_its_tasks_takes_no_new_member(db: Database) -> None:
    store = IdentityStore(db)
    alone, org, _ = store.create_user("alone")
    assert store.sole_member_reads_org(org, alone)
    assert not store.sole_member_reads_org(org, "user_someone_else")
    # Its org-wide read tokens would read a newcomer's tasks: nobody joins, even after a restart.
    for fresh in (store, IdentityStore(db)):
        with pytest.raises(ValueError, match="organisation of its own"):
            fresh.create_user("newcomer", org_id=org)
    first, shared, _ = store.create_user("first")
    store.create_user("second", org_id=shared)
    assert not store.sole_member_reads_org(shared, first)
