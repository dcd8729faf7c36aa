"""Access JWTs: verified once, then remembered until they expire."""

from __future__ import annotations

import math
import time

import jwt
import pytest

from blocks_devnet.backend.errors import TOKEN_EXPIRED, TOKEN_INVALID, BackendError
from blocks_devnet.backend.jwt_tokens import JwtIssuer
from blocks_devnet.backend.principal import Principal

ALICE = Principal(user_id="u_alice", org_id="o_1", kind="consumer")


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = JwtIssuer("s" * 48)
    token = issuer.issue(ALICE, ttl_seconds=60)
    assert issuer.verify(token) == ALICE

    def no_decoding(*args: object, **kwargs: object) -> object:
        raise AssertionError("a remembered token was decoded again")

    monkeypatch.setattr(jwt, "decode", no_decoding)
    assert issuer.verify(token) == ALICE


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = JwtIssuer("s" * 48)
    clock = FakeTime(time.time())
    monkeypatch.setattr(time, "time", clock)
    token = issuer.issue(ALICE, ttl_seconds=60)
    assert issuer.verify(token) == ALICE  # remembered now
    clock.now = math.ceil(clock.now) + 60  # exp itself is expired, as PyJWT has it
    with pytest.raises(BackendError) as caught:
        issuer.verify(token)
    assert (caught.value.status, caught.value.code) == (401, TOKEN_EXPIRED)


def test_forged_tokens_are_refused_every_time() -> None:
    issuer = JwtIssuer("s" * 48)
    forged = JwtIssuer("x" * 48).issue(ALICE, ttl_seconds=60)
    for _ in range(2):
        with pytest.raises(BackendError) as caught:
            issuer.verify(forged)
        assert (caught.value.status, caught.value.code) == (401, TOKEN_INVALID)


def test_a_token_lives_at_least_its_announced_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = JwtIssuer("s" * 48)
    clock = FakeTime(1_800_000_000.95)  # late in a second: rounding down would cut it short
    monkeypatch.setattr(time, "time", clock)
    token = issuer.issue(ALICE, ttl_seconds=1)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] >= clock.now + 1 and claims["iat"] <= clock.now
