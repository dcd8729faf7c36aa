"""Fixtures shared by the whole suite: a realtime server on an ephemeral port and clients."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pubnub.pubnub import PubNub

from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.server import RealtimeServer
from tests.support.pubnub_clients import make_config

OPEN_KEYSET = Keyset.generate("open")
SECURE_KEYSET = Keyset.generate("secure", access_enabled=True)


@pytest.fixture
def realtime_server(tmp_path: Path) -> Iterator[RealtimeServer]:
    """A realtime server with an open and an access-controlled keyset, on disk."""
    with RealtimeServer(
        [OPEN_KEYSET, SECURE_KEYSET], data_dir=tmp_path / "data", long_poll_seconds=5
    ) as server:
        yield server


PubNubFactory = Callable[..., PubNub]


@pytest.fixture
def pubnub_factory(realtime_server: RealtimeServer) -> Iterator[PubNubFactory]:
    """``pubnub_factory(user_id, keyset=OPEN_KEYSET, secret=False)`` → a stopped-at-teardown client."""
    clients: list[PubNub] = []

    def make(user_id: str, keyset: Keyset = OPEN_KEYSET, *, secret: bool = False) -> PubNub:
        client = PubNub(make_config(realtime_server.origin, keyset, user_id, secret=secret))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Project threads (named blocks-*) must not outlive a test."""
    yield
    leaked = [t for t in threading.enumerate() if t.name.startswith("blocks-") and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads still running after the test: {still}"
