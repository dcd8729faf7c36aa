"""The agent's embedded consumer ``TaskClient`` (``ctx.task_client``), created on first use.

Most agents never call other agents, so the client (CDM fetch, token exchange, refresh timer)
is built only when a handler first touches it; attribute access is forwarded to it.
"""

from __future__ import annotations

import threading
from typing import Any

from blocks_network.errors import ClosedError

__all__ = ["LazyTaskClient"]


class LazyTaskClient:
    """Forwards attribute access to a ``TaskClient`` created on first use. Thread-safe.

    It uses the agent's API key and billing mode (agent-to-agent calls are billed like the
    calling agent); after a SwitchEnvironment the next use builds a client for the new mode.
    """

    def __init__(
        self,
        *,
        billing_mode: str,
        api_key: str,
        cdm_url: str | None,
        base_url: str | None,
        user_id: str,
    ) -> None:
        self._billing_mode = billing_mode
        self._api_key = api_key
        self._cdm_url = cdm_url
        self._base_url = base_url
        self.user_id = user_id
        self._lock = threading.Lock()
        self._client: Any = None
        self._closed = False

    @property
    def created(self) -> bool:
        """True once the real client exists."""
        with self._lock:
            return self._client is not None

    def current(self) -> Any:
        """The real client if it exists now (None before first use), without creating it."""
        with self._lock:
            return self._client

    def _get(self) -> Any:
        with self._lock:
            if self._closed:
                raise ClosedError("the agent instance is stopped; its task_client is closed")
            if self._client is None:
                from blocks_network.consumer.task_client import TaskClient

                self._client = TaskClient.create(
                    self._billing_mode,
                    api_key=self._api_key,
                    cdm_url=self._cdm_url,
                    base_url=self._base_url,
                )
            return self._client

    def get(self) -> Any:
        """The real client, created now if needed (blocking: CDM fetch, token exchange)."""
        return self._get()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._get(), name)

    def switch_billing_mode(self, billing_mode: str) -> None:
        """Use ``billing_mode`` from now on (the current client, if any, is destroyed)."""
        with self._lock:
            client, self._client = self._client, None
            self._billing_mode = billing_mode
        if client is not None:
            client.destroy()

    def close(self) -> None:
        """No-op: the client belongs to the agent instance, which closes it on stop."""

    destroy = close

    def __enter__(self) -> LazyTaskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a ``with`` block keeps the shared client open."""

    def shutdown(self) -> None:
        """Destroy the client if it was created (instance stop); safe to call twice."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.destroy()
