"""ConsumerAuth with a scripted token source: timer refresh, failure policy, single-flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from blocks_network.auth.consumer_auth import ConsumerAuth
from blocks_network.auth.token_types import TokenResult
from blocks_network.errors import AuthError, AuthRefreshFailedError, ConfigError
from blocks_network.transport.http_client import HttpClient

WAIT = 10.0


class ScriptedSource:
    """Answers each call with the next scripted outcome (a TokenResult or an exception)."""

    describe = "scripted source"

    def __init__(self, *outcomes: TokenResult | Exception, gate: threading.Event | None = None):
        self.outcomes = list(outcomes)
        self.calls = 0
        self.called = threading.Condition()
        self.gate = gate

    def _next(self) -> TokenResult:
        with self.called:
            self.calls += 1
            index = min(self.calls - 1, len(self.outcomes) - 1)
            self.called.notify_all()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        outcome = self.outcomes[index]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    acquire = _next
    refresh = _next

    def wait_calls(self, n: int) -> None:
        with self.called:
            assert self.called.wait_for(lambda: self.calls >= n, WAIT), f"{self.calls} < {n}"


def token(n: int, ttl: float = 3600) -> TokenResult:
    return TokenResult(f"tok-{n}", ttl, f"user-{n}")


@pytest.fixture
def make_auth() -> Callable[..., ConsumerAuth]:
    made: list[ConsumerAuth] = []

    def make(source: ScriptedSource, **kw: object) -> ConsumerAuth:
        auth = ConsumerAuth(source, **kw)  # type: ignore[arg-type]
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.destroy()


def test_start_installs_the_first_token_and_user(make_auth: Callable[..., ConsumerAuth]) -> None:
    auth = make_auth(ScriptedSource(token(1)))
    assert auth.token is None and auth.authorization_header() == {}
    auth.start()
    assert auth.token == "tok-1"
    assert auth.user_id == "user-1"
    assert auth.authorization_header() == {"Authorization": "Bearer tok-1"}


def test_first_acquisition_error_propagates(make_auth: Callable[..., ConsumerAuth]) -> None:
    auth = make_auth(ScriptedSource(AuthError("nope")))
    with pytest.raises(AuthError, match="nope"):
        auth.start()


def test_proactive_refresh_runs_on_a_named_daemon_timer(
    make_auth: Callable[..., ConsumerAuth],
) -> None:
    seen: list[threading.Thread] = []
    source = ScriptedSource(token(1, ttl=1.0), token(2))
    original = source.refresh

    def refresh() -> TokenResult:
        seen.append(threading.current_thread())
        return original()

    source.refresh = refresh  # type: ignore[method-assign]
    auth = make_auth(source)
    started = time.monotonic()
    auth.start()
    source.wait_calls(2)
    # ttl 1 s → 80 % is 0.8 s, raised to the 1 s floor.
    assert time.monotonic() - started >= 0.95
    assert seen[0].name == "blocks-auth-refresh" and seen[0].daemon
    deadline = time.monotonic() + WAIT
    while auth.token != "tok-2" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert auth.token == "tok-2"


def test_three_failures_call_on_auth_error_once_and_keep_the_stale_token(
    make_auth: Callable[..., ConsumerAuth],
) -> None:
    errors: list[AuthRefreshFailedError] = []
    reported = threading.Event()
    sleeps: list[float] = []

    def on_auth_error(err: AuthRefreshFailedError) -> None:
        errors.append(err)
        reported.set()

    boom = AuthError("endpoint down")
    source = ScriptedSource(token(1, ttl=1.0), boom, boom, boom, boom)
    auth = make_auth(source, on_auth_error=on_auth_error, retry_sleep=sleeps.append)
    auth.start()
    assert reported.wait(WAIT)
    source.wait_calls(4)
    time.sleep(0.2)  # no fourth proactive attempt may follow
    assert source.calls == 4
    assert sleeps == [5.0, 10.0]
    assert len(errors) == 1 and isinstance(errors[0], AuthRefreshFailedError)
    assert errors[0].__cause__ is boom
    assert auth.token == "tok-1"  # stale token still in use
    assert auth.last_error is errors[0]


def test_preflight_retries_once_then_uses_the_stale_token(
    make_auth: Callable[..., ConsumerAuth],
) -> None:
    boom = AuthError("down")
    source = ScriptedSource(token(1, ttl=60), boom, boom, token(4))
    auth = make_auth(source)
    auth.start()
    with pytest.raises(AuthRefreshFailedError):
        auth.refresh_after_rejection("tok-1")
    auth.preflight()  # one retry fails; the stale token stays in use until a 401
    assert source.calls == 3 and auth.token == "tok-1"
    auth.preflight()  # recovers
    assert auth.token == "tok-4" and auth.last_error is None
    auth.preflight()  # healthy: no request
    assert source.calls == 4


def test_preflight_without_a_token_raises(make_auth: Callable[..., ConsumerAuth]) -> None:
    auth = make_auth(ScriptedSource(AuthError("down")))
    with pytest.raises(AuthRefreshFailedError):
        auth.preflight()


def test_concurrent_401s_share_one_refresh(make_auth: Callable[..., ConsumerAuth]) -> None:
    gate = threading.Event()
    source = ScriptedSource(token(1), token(2))
    auth = make_auth(source)
    auth.start()
    source.gate = gate
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(auth.refresh_after_rejection("tok-1")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    source.wait_calls(2)
    time.sleep(0.1)  # let every caller reach the shared wait
    gate.set()
    for t in threads:
        t.join(WAIT)
    assert results == ["tok-2"] * 8
    assert source.calls == 2


def test_rejection_of_an_already_replaced_token_needs_no_request(
    make_auth: Callable[..., ConsumerAuth],
) -> None:
    source = ScriptedSource(token(1), token(2))
    auth = make_auth(source)
    auth.start()
    assert auth.refresh_after_rejection("tok-1") == "tok-2"
    assert auth.refresh_after_rejection("tok-1") == "tok-2"
    assert source.calls == 2


def test_waiters_share_the_failure(make_auth: Callable[..., ConsumerAuth]) -> None:
    gate = threading.Event()
    source = ScriptedSource(token(1), AuthError("down"))
    auth = make_auth(source)
    auth.start()
    source.gate = gate
    failures: list[BaseException] = []

    def call() -> None:
        try:
            auth.refresh_after_rejection("tok-1")
        except AuthRefreshFailedError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    source.wait_calls(2)
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(WAIT)
    assert len(failures) == 4 and len({id(f) for f in failures}) == 1
    assert source.calls == 2


def test_destroy_stops_the_timer_and_keeps_the_token(
    make_auth: Callable[..., ConsumerAuth],
) -> None:
    source = ScriptedSource(token(1, ttl=1.0), token(2))
    auth = make_auth(source)
    auth.start()
    auth.destroy()
    auth.destroy()
    time.sleep(1.3)
    assert source.calls == 1
    assert auth.token == "tok-1"
    assert not [t for t in threading.enumerate() if t.name == "blocks-auth-refresh"]


def test_from_options_needs_exactly_one_mode() -> None:
    http = HttpClient()
    with pytest.raises(ConfigError, match="no credentials"):
        ConsumerAuth.from_options(http=http, base_url="http://x")
    with pytest.raises(ConfigError, match="several credentials"):
        ConsumerAuth.from_options(
            http=http, base_url="http://x", api_key="bk_1", token_endpoint="http://t"
        )
