"""Helpers for task-service tests: a JSON-RPC consumer, fast safety-net settings, waiting.

Waiting is always on a condition with a deadline (``wait_until``), never a bare sleep.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from pubnub.pubnub import PubNub

from blocks_devnet.backend.tasks.settings import TaskSettings
from blocks_devnet.backend.tasks.store import TaskRecord
from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.constants import API_PATH_RPC
from tests.support.backend_client import BackendClient, Reply, make_card
from tests.support.pubnub_clients import make_config

T = TypeVar("T")

#: Safety-net timings short enough for tests to watch them happen.
FAST_SETTINGS = TaskSettings(
    scan_interval_seconds=0.05,
    pump_interval_seconds=0.02,
    release_grace_seconds=0.5,
    expire_grace_seconds=0.3,
    offline_startup_grace_seconds=0.0,
    orphan_queue_seconds=0.5,
    stream_revoke_delay_seconds=0.0,
)

_ids = itertools.count(1)


def speed_up(network: LocalNetwork, **overrides: Any) -> None:
    """Give the network's task service :data:`FAST_SETTINGS` (plus ``overrides``)."""
    settings = replace(FAST_SETTINGS, **overrides)
    network.call(lambda: network.context.tasks.configure(settings))


def wait_until(condition: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def register_agent(
    network: LocalNetwork,
    name: str,
    *,
    api_key: str | None = None,
    billing_mode: str = "free",
    listing: str = "public",
    **card: Any,
) -> None:
    """Publish a card for ``name`` (``card`` overrides top-level card members)."""
    extra: dict[str, Any] = {"listing": listing}
    if billing_mode == "paid":
        extra["pricing"] = {"pricePerTask": 1}
    api = BackendClient(network.url)
    try:
        api.publish(
            api_key or network.api_key, make_card(name, **card), billing_mode, expect=201, **extra
        )
    finally:
        api.close()


def task_record(network: LocalNetwork, task_id: str) -> TaskRecord | None:
    return network.call(lambda: network.context.tasks.store.get(task_id))


class Consumer:
    """A consumer of the local network speaking JSON-RPC with a consumer JWT."""

    def __init__(self, network: LocalNetwork, api_key: str | None = None) -> None:
        self.network = network
        self.api = BackendClient(network.url)
        exchanged = self.api.consumer_token(api_key or network.api_key)
        self.token: str = exchanged["accessToken"]
        self.user_id: str = exchanged["userId"]

    def close(self) -> None:
        self.api.close()

    def rpc(self, method: str, params: Any = None, **kw: Any) -> Reply:
        body = {
            "jsonrpc": "2.0",
            "id": f"rpc-{next(_ids)}",
            "method": method,
            "params": params or {},
        }
        kw.setdefault("token", self.token)
        return self.api.post(API_PATH_RPC, body, **kw)

    def call(self, method: str, params: Any = None) -> Any:
        """The ``result`` of a call that must succeed."""
        reply = self.rpc(method, params)
        assert reply.status == 200 and "result" in reply.body, reply.body
        return reply.body["result"]

    def error(self, method: str, params: Any = None) -> dict[str, Any]:
        """The ``error`` of a call that must fail (HTTP 200)."""
        reply = self.rpc(method, params)
        assert reply.status == 200 and "error" in reply.body, reply.body
        return dict(reply.body["error"])

    def send(
        self, agent_name: str, text: str = "hello", *, billing_mode: str = "free", **params: Any
    ) -> dict[str, Any]:
        message = {
            "agentName": agent_name,
            "billingMode": billing_mode,
            "requestParts": [{"partId": "text", "text": text}],
            "ownerId": "",
            **params,
        }
        return dict(self.call("SendMessage", message))

    def reader(self, result: dict[str, Any]) -> PubNub:
        """A PubNub client holding the result's read token (stop it when done)."""
        blocks = result["extensions"]["blocks"]
        keyset = next(
            k for k in self.network.keysets.values() if k.subscribe_key == blocks["subscribeKey"]
        )
        client = PubNub(make_config(self.network.origin, keyset, f"blocks-task-{next(_ids):012d}"))
        client.set_token(blocks["readToken"])
        return client

    def history(self, result: dict[str, Any]) -> list[Any]:
        """The task channel's stored messages, oldest first (read with the read token)."""
        client = self.reader(result)
        try:
            channel = result["extensions"]["blocks"]["streamChannels"]["status"]
            envelope = client.fetch_messages().channels([channel]).maximum_per_channel(100).sync()
            return [item.message for item in envelope.result.channels.get(channel, [])]
        finally:
            client.stop()
