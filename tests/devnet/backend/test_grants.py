"""StartTask's control tokens: reused while recent and not revoked, else minted anew."""

from __future__ import annotations

import time

import pytest

from blocks_devnet.backend import grants
from blocks_devnet.realtime.access_tokens import READ, verify_token
from blocks_devnet.realtime.keysets import Keyset
from blocks_network.protocol.channels import control_channel

KEYSET = Keyset("network", "pub-c-g", "sub-c-g", "sec-c-g", access_enabled=True)


def never(token: str) -> bool:
    return False


def test_a_recent_control_token_is_reused_and_grants_the_control_channel() -> None:
    first = grants.reusable_control_token(KEYSET, "a_1", "inst-reuse", never)
    assert grants.reusable_control_token(KEYSET, "a_1", "inst-reuse", never) == first
    grant = verify_token(first, KEYSET.secret_key, time.time())
    assert grant.channels == {control_channel("a_1"): READ}
    assert grant.authorized_uuid == "inst-reuse"
    # Another instance (or agent) never gets it.
    assert grants.reusable_control_token(KEYSET, "a_1", "inst-other", never) != first
    assert grants.reusable_control_token(KEYSET, "a_2", "inst-reuse", never) != first


def test_a_revoked_control_token_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    first = grants.reusable_control_token(KEYSET, "a_1", "inst-revoked", never)
    now[0] += 1  # tokens minted in the same second with the same grant are identical
    again = grants.reusable_control_token(KEYSET, "a_1", "inst-revoked", {first}.__contains__)
    assert again != first


def test_a_control_token_past_half_its_life_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    first = grants.reusable_control_token(KEYSET, "a_1", "inst-aging", never)
    now[0] += grants.CONTROL_TOKEN_REUSE_MINUTES * 60 - 1
    assert grants.reusable_control_token(KEYSET, "a_1", "inst-aging", never) == first
    now[0] += 2
    fresh = grants.reusable_control_token(KEYSET, "a_1", "inst-aging", never)
    assert fresh != first
    remaining = verify_token(fresh, KEYSET.secret_key, now[0]).expires_at - now[0]
    assert remaining >= grants.CONTROL_TOKEN_REUSE_MINUTES * 60
