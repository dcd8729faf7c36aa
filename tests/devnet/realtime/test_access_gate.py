"""AccessGate's verified-token cache never outlives a token's expiry or its revocation."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from blocks_devnet.realtime import access
from blocks_devnet.realtime.access import AccessGate
from blocks_devnet.realtime.access_tokens import READ, TokenGrant, issue_token
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
    assert info.value.body["error"]["message"] == "Token is revoked"


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "VERIFIED_CACHE_SIZE", 3)
    gate = AccessGate(Database(None))
    tokens = [make_token(ttl_minutes=i + 1) for i in range(5)]
    for token in tokens:
        gate.grant_for(request_with(token))
    assert len(gate._verified) == 3
