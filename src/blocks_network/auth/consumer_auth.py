"""Consumer credentials with proactive and reactive refresh (§6, seed "Refresh and error handling").

Exactly one mode per client: ``api_key``, ``token_endpoint`` (URL or TokenEndpointConfig) or
``token_provider``. Whatever the mode:

- the token is refreshed on a daemon ``threading.Timer`` (``blocks-auth-refresh``) at 80 % of
  its lifetime; a failing refresh is retried after 5 s and 10 s; after the third consecutive
  failure ``on_auth_error(AuthRefreshFailedError)`` fires once and the stale token stays in use;
- a request rejected with HTTP 401 calls :meth:`ConsumerAuth.refresh_after_rejection`;
  concurrent callers share one refresh (``threading.Event``, waiters up to 30 s);
- :meth:`ConsumerAuth.preflight` retries once when an error is recorded, else raises;
- :meth:`ConsumerAuth.destroy` stops the timer and leaves the current token valid.

A ``threading.Lock`` guards the token state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from blocks_network.auth.refresh_policy import DEFAULT_TIMING, RefreshPolicy, RefreshTiming
from blocks_network.auth.token_sources import (
    ApiKeyTokenSource,
    EndpointTokenSource,
    ProviderTokenSource,
    TokenSource,
)
from blocks_network.auth.token_types import TokenEndpointConfig, TokenProvider, TokenResult
from blocks_network.errors import AuthRefreshFailedError, ClosedError, ConfigError
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.retry import wait

__all__ = ["AuthErrorCallback", "ConsumerAuth"]

logger = logging.getLogger(__name__)

AuthErrorCallback = Callable[[AuthRefreshFailedError], None]

#: How long a caller waits for a refresh another thread started.
SHARED_REFRESH_WAIT_S = 30.0
_TIMER_THREAD_NAME = "blocks-auth-refresh"
_JOIN_TIMEOUT_S = 5.0


class _Flight:
    """One in-progress refresh that several callers share."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: AuthRefreshFailedError | None = None


class ConsumerAuth:
    """Holds a consumer JWT and keeps it fresh; thread-safe."""

    def __init__(
        self,
        source: TokenSource,
        *,
        on_auth_error: AuthErrorCallback | None = None,
        timing: RefreshTiming = DEFAULT_TIMING,
        clock: Callable[[], float] = time.monotonic,
        retry_sleep: Callable[[float], None] | None = None,
        shared_wait_s: float = SHARED_REFRESH_WAIT_S,
    ) -> None:
        """Wrap ``source``; call :meth:`start` to obtain the first token.

        ``retry_sleep`` replaces the waits between failed proactive attempts (tests); by
        default they wait on an event that :meth:`destroy` sets.
        """
        self._source = source
        self._on_auth_error = on_auth_error
        self._policy = RefreshPolicy(timing, clock)
        self._retry_sleep = retry_sleep
        self._shared_wait_s = shared_wait_s
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._token: str | None = None
        self._user_id: str | None = None
        self._generation = 0
        self._error: AuthRefreshFailedError | None = None
        self._flight: _Flight | None = None
        self._timer: threading.Timer | None = None

    @classmethod
    def from_options(
        cls,
        *,
        http: HttpClient,
        base_url: str,
        api_key: str | None = None,
        token_endpoint: str | TokenEndpointConfig | None = None,
        token_provider: TokenProvider | None = None,
        on_auth_error: AuthErrorCallback | None = None,
    ) -> ConsumerAuth:
        """Build the auth for exactly one of the three modes (not started).

        Raises ConfigError when none or several modes are given.
        """
        given = [
            name
            for name, value in (
                ("api_key", api_key),
                ("token_endpoint", token_endpoint),
                ("token_provider", token_provider),
            )
            if value
        ]
        if len(given) != 1:
            what = "no credentials" if not given else f"several credentials ({', '.join(given)})"
            raise ConfigError(
                f"{what}: pass exactly one of api_key=..., token_endpoint=... or "
                "token_provider=... (or set BLOCKS_API_KEY)"
            )
        source: TokenSource
        if api_key:
            source = ApiKeyTokenSource(api_key, base_url, http)
        elif token_endpoint:
            source = EndpointTokenSource(token_endpoint, http)
        else:
            assert token_provider is not None
            source = ProviderTokenSource(token_provider)
        return cls(source, on_auth_error=on_auth_error)

    # --- state -----------------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The current (possibly stale) token, None before :meth:`start`."""
        with self._lock:
            return self._token

    @property
    def user_id(self) -> str | None:
        """The authenticated user id the token source reported, if any."""
        with self._lock:
            return self._user_id

    @property
    def last_error(self) -> AuthRefreshFailedError | None:
        """The recorded refresh failure, cleared by the next successful refresh."""
        with self._lock:
            return self._error

    def authorization_header(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` or ``{}`` without a token."""
        token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Obtain the first token (blocking) and arm the proactive refresh.

        Raises the source's typed error (ApiKeyInvalidError, AuthError, NetworkError).
        """
        if self._stopped.is_set():
            raise ClosedError("this ConsumerAuth was destroyed; create a new client")
        self._install(self._source.acquire())

    def destroy(self) -> None:
        """Stop the refresh timer; the current token stays usable. Safe to call twice."""
        self._stopped.set()
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join(_JOIN_TIMEOUT_S)

    # --- refresh -------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Before a request: if a refresh failure is recorded, retry once.

        If that retry fails too, the stale token is used anyway: it stays usable until the
        backend refuses it (the 401 then triggers one more refresh, whose failure raises).
        Raises AuthRefreshFailedError only when there is no token at all.
        """
        with self._lock:
            broken = self._error is not None or self._token is None
        if not broken:
            return
        try:
            self.refresh_after_rejection(None)
        except AuthRefreshFailedError:
            if self.token is None:
                raise
            logger.debug("token refresh still failing; trying the stale token")

    def refresh_after_rejection(self, rejected_token: str | None) -> str:
        """Refresh because ``rejected_token`` was refused (HTTP 401); returns the new token.

        If another thread already replaced that token, returns the replacement without a
        request. Raises AuthRefreshFailedError when the refresh fails.
        """
        with self._lock:
            if (
                rejected_token is not None
                and self._token is not None
                and self._token != rejected_token
                and self._error is None
            ):
                return self._token
        return self._refresh_shared()

    def _refresh_shared(self) -> str:
        with self._lock:
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight()
        if not leader:
            if not flight.done.wait(self._shared_wait_s):
                raise AuthRefreshFailedError(
                    f"timed out after {self._shared_wait_s:.0f} s waiting for a token refresh "
                    f"by {self._source.describe}"
                )
            if flight.error is not None:
                raise flight.error
            with self._lock:
                assert self._token is not None
                return self._token
        report: AuthRefreshFailedError | None = None
        try:
            result = self._source.refresh()
        except Exception as exc:
            failure = AuthRefreshFailedError(
                f"token refresh via {self._source.describe} failed: {exc}"
            )
            failure.__cause__ = exc
            with self._lock:
                self._error = failure
                _, should_report = self._policy.attempt_failed()
                failures = self._policy.failures
            flight.error = failure
            report = failure if should_report else None
            logger.warning(
                "token refresh failed (%s consecutive): %s; the previous token stays in use",
                failures,
                exc,
            )
            raise failure from exc
        else:
            return self._install(result)
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()
            if report is not None:
                self._notify(report)

    def _install(self, result: TokenResult) -> str:
        with self._lock:
            self._token = result.token
            if result.user_id:
                self._user_id = result.user_id
            self._error = None
            self._generation += 1
            delay = self._policy.token_issued(result.expires_in)
            old = self._timer
            self._timer = None
            if not self._stopped.is_set():
                timer = threading.Timer(delay, self._proactive_refresh)
                timer.name = _TIMER_THREAD_NAME
                timer.daemon = True
                self._timer = timer
                timer.start()
        if old is not None:
            old.cancel()
        logger.debug("consumer token installed; proactive refresh in %.1f s", delay)
        return result.token

    def _proactive_refresh(self) -> None:
        with self._lock:
            generation = self._generation
        while not self._stopped.is_set():
            try:
                self._refresh_shared()
                return
            except AuthRefreshFailedError:
                pass
            with self._lock:
                if self._generation != generation:
                    return  # someone else refreshed meanwhile; their timer takes over
                delay = self._policy.timing.retry_delay(self._policy.failures)
            if delay is None:
                return  # reported; reactive refresh (401 / preflight) takes over
            if self._retry_sleep is not None:
                self._retry_sleep(delay)
            elif not wait(delay, self._stopped):
                return

    def _notify(self, error: AuthRefreshFailedError) -> None:
        callback = self._on_auth_error
        if callback is None:
            logger.error("%s (no on_auth_error callback registered)", error)
            return
        try:
            callback(error)
        except Exception:
            logger.exception("on_auth_error callback raised")
