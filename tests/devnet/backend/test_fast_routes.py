"""The requests clients make as they start (config, tokens, registry) are answered by the
fast path exactly as aiohttp answers them, and a connection that starts with them keeps
serving RPCs on the fast path.

Two networks over copies of one data directory (same keysets, API key and registry), one
with the fast path and one without, get the same raw bytes; their answers must match.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.constants import (
    API_PATH_AGENT_CONNECT,
    API_PATH_CONSUMER_TOKEN,
    API_PATH_REGISTRY_AGENTS,
    API_PATH_RPC,
)
from tests.devnet.backend.conftest import devnet_config
from tests.devnet.raw_exchange import RawClient, exchange, get, normalised, post


@pytest.fixture
def networks(tmp_path: Path) -> Iterator[tuple[LocalNetwork, LocalNetwork]]:
    first = LocalNetwork(devnet_config(tmp_path / "fast")).start()
    first.stop()  # its data directory now holds keysets, secrets and the registry
    shutil.copytree(tmp_path / "fast", tmp_path / "slow")
    fast = LocalNetwork(devnet_config(tmp_path / "fast", fast_path=True)).start()
    slow = LocalNetwork(devnet_config(tmp_path / "slow", fast_path=False)).start()
    try:
        yield fast, slow
    finally:
        fast.stop()
        slow.stop()


def _json_post(path: str, body: Any, *extra: str) -> bytes:
    return post(path, json.dumps(body).encode(), "Content-Type: application/json", *extra)


def _cases(api_key: str) -> dict[str, bytes]:
    auth = f"Authorization: Bearer {api_key}"
    registry = API_PATH_REGISTRY_AGENTS
    return {
        "config": get("/config.json", host="devnet.example:4100"),
        "cdm path": get("/api/v1/cdm", host="10.0.0.7:9"),
        "config without a host header": get("/config.json", host=None),
        "registry lookup": get(f"{registry}?agentName=echo", auth),
        "registry lookup, plus and percent": get(f"{registry}?agentName=a+b%20c"),
        "registry list": get(f"{registry}?limit=2&include=full", auth),
        "registry bad limit": get(f"{registry}?limit=abc"),
        "registry bad protocol version": get(registry, "Blocks-Protocol-Version: 1999-01-01"),
        "register without auth": _json_post(registry, {"card": {}}),
        "register bad body": post(registry, b"{nope", auth),
        "consumer token, bad key": _json_post(API_PATH_CONSUMER_TOKEN, {"apiKey": "nope"}),
        "consumer token, not an object": _json_post(API_PATH_CONSUMER_TOKEN, [1, 2]),
        "connect, missing fields": _json_post(API_PATH_AGENT_CONNECT, {}, auth),
    }


@pytest.mark.parametrize("name", list(_cases("k")))
def test_start_up_requests_are_answered_as_aiohttp_answers_them(
    networks: tuple[LocalNetwork, LocalNetwork], name: str
) -> None:
    fast, slow = networks
    assert fast.api_key == slow.api_key
    request = _cases(fast.api_key)[name]
    assert exchange(fast, [request]) == exchange(slow, [request])


def test_config_names_the_host_the_client_used(
    networks: tuple[LocalNetwork, LocalNetwork],
) -> None:
    fast, _ = networks
    client = RawClient(fast)
    try:
        client.sock.sendall(get("/config.json", host="devnet.example:4100"))
        status, _, body = client.response()
    finally:
        client.close()
    assert status == 200
    document = json.loads(body)
    assert document["api"]["baseUrl"] == "http://devnet.example:4100"
    assert document["realtime"]["origin"] == "devnet.example:4100"


def test_a_connection_that_starts_with_config_and_a_token_serves_rpcs_on_the_fast_path(
    networks: tuple[LocalNetwork, LocalNetwork], monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks_devnet import fast_path

    handed_over: list[bytes] = []
    original = fast_path.FastProtocol._hand_over

    def record(self: Any) -> None:
        handed_over.append(bytes(self._buffer[:60]))
        original(self)

    monkeypatch.setattr(fast_path.FastProtocol, "_hand_over", record)
    fast, _ = networks
    client = RawClient(fast)
    try:
        client.sock.sendall(get("/config.json"))
        assert client.response()[0] == 200
        client.sock.sendall(_json_post(API_PATH_CONSUMER_TOKEN, {"apiKey": fast.api_key}))
        status, _, body = client.response()
        assert status == 200
        token = json.loads(body)["accessToken"]
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "t_nope"}}
        client.sock.sendall(_json_post(API_PATH_RPC, rpc, f"Authorization: Bearer {token}"))
        answer = normalised(client.response())
    finally:
        client.close()
    assert answer[0] == 200 and "error" in json.loads(answer[2])
    assert handed_over == []
