"""A local Blocks Network for a test session: :class:`BlocksTestNetwork`.

It wraps :class:`blocks_devnet.network.LocalNetwork` on a free port with its own data
directory and hands out what a test needs: the two environment variables, consumer clients
that are destroyed with it, extra users, and card publishing (what ``blocks publish`` does).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_network.consumer.registry_client import RegistryClient
from blocks_network.consumer.task_client import TaskClient
from blocks_network.errors import ClosedError

__all__ = ["BlocksTestNetwork"]

logger = logging.getLogger(__name__)

#: Held subscribes are answered after this long; short, so stopping never waits on one.
TEST_LONG_POLL_SECONDS = 5.0
#: Variables that would point the SDK somewhere else than this network.
_BLOCKS_PREFIX = "BLOCKS_"


class BlocksTestNetwork:
    """A running local network for tests; a context manager. Thread-safe.

    ``url``, ``cdm_url``, ``api_key`` and ``env`` (``BLOCKS_CDM_URL``/``BLOCKS_API_KEY``)
    describe it; :meth:`client` makes consumer clients that :meth:`close` destroys;
    :meth:`publish` registers a card; :attr:`network` is the underlying LocalNetwork.
    """

    def __init__(self, network: LocalNetwork) -> None:
        self.network = network
        self._lock = threading.Lock()
        self._clients: list[TaskClient] = []
        self._closed = False

    @classmethod
    def start(cls, data_dir: str | os.PathLike[str] | None, **config: Any) -> BlocksTestNetwork:
        """Start a network on a free loopback port (blocking until it serves).

        ``data_dir`` holds its SQLite state (None keeps it in memory); ``config`` overrides
        :class:`~blocks_devnet.backend.config.DevnetConfig` fields. Raises
        ``ServerStartError`` when it cannot start.
        """
        settings: dict[str, Any] = {"port": 0, "long_poll_seconds": TEST_LONG_POLL_SECONDS}
        settings.update(config)
        settings["data_dir"] = None if data_dir is None else Path(data_dir)
        network = LocalNetwork(DevnetConfig(**settings)).start()
        return cls(network)

    # --- where ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls=True``): the backend and
        realtime API."""
        return self.network.url

    @property
    def cdm_url(self) -> str:
        """The config document URL (what ``BLOCKS_CDM_URL`` is set to)."""
        return self.network.cdm_url

    @property
    def api_key(self) -> str:
        """The development user's API key."""
        return self.network.api_key

    @property
    def env(self) -> dict[str, str]:
        """``{"BLOCKS_CDM_URL": ..., "BLOCKS_API_KEY": ...}`` for this network."""
        return self.network.env()

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) without any ``BLOCKS_*`` variable, plus :attr:`env`.

        What an agent or a subprocess should see so that nothing else leaks in.
        """
        source = os.environ if base is None else base
        clean = {k: v for k, v in source.items() if not k.startswith(_BLOCKS_PREFIX)}
        clean.update(self.env)
        return clean

    # --- clients and users ----------------------------------------------------------------

    def client(self, billing_mode: str = "free", **options: Any) -> TaskClient:
        """A consumer ``TaskClient`` for this network, destroyed by :meth:`close`.

        ``options`` go to ``TaskClient.create`` (e.g. ``api_key=`` of another user,
        ``token_provider=``); with no credential option the development key is used.
        Blocks for the CDM fetch and the first token.
        """
        with self._lock:
            if self._closed:
                raise ClosedError("the test network is stopped")
        if not any(options.get(k) for k in ("api_key", "token_endpoint", "token_provider")):
            options["api_key"] = self.api_key
        options.setdefault("cdm_url", self.cdm_url)
        options.setdefault("environ", self.env)
        client = TaskClient.create(billing_mode, **options)
        with self._lock:
            self._clients.append(client)
        return client

    def create_user(self, name: str) -> tuple[str, str]:
        """A new user in a new organisation: ``(user_id, api_key)``."""
        return self.network.create_user(name)

    def publish(
        self,
        card: Mapping[str, Any],
        *,
        billing_mode: str = "free",
        pricing: Mapping[str, Any] | None = None,
        listing: str | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """Register or update ``card`` in the registry (as ``blocks publish`` does).

        Returns the registry record. Raises BackendError when the registry refuses (bad
        card or pricing, a name owned by another organisation).
        """
        with RegistryClient.with_api_key(self.url, api_key or self.api_key) as registry:
            record, _created = registry.publish(
                card, billing_mode=billing_mode, pricing=pricing, listing=listing
            )
        return record

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Destroy the clients made by :meth:`client` and stop the network; safe twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.destroy()
        self.network.stop()

    def __enter__(self) -> BlocksTestNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BlocksTestNetwork(url={self.url!r})"
