"""LocalNetwork: lifecycle, restart persistence, prompt shutdown with held long polls."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from blocks_devnet.backend import grants
from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork, NetworkNotRunningError
from blocks_devnet.server_thread import SHUTDOWN_TIMEOUT_SECONDS
from blocks_network.protocol.constants import ENV_API_KEY, ENV_CDM_URL
from tests.support.backend_client import BackendClient, make_card


def config(data_dir: Path, long_poll_seconds: float = 5) -> DevnetConfig:
    return DevnetConfig(port=0, data_dir=data_dir, long_poll_seconds=long_poll_seconds)


def test_urls_env_and_lifecycle(tmp_path: Path) -> None:
    network = LocalNetwork(config(tmp_path))
    with pytest.raises(NetworkNotRunningError):
        _ = network.context
    with network:
        assert network.port > 0
        assert network.url == f"http://127.0.0.1:{network.port}"
        assert network.env() == {
            ENV_CDM_URL: f"{network.url}/config.json",
            ENV_API_KEY: network.api_key,
        }
        assert httpx.get(network.cdm_url, timeout=5).status_code == 200
        assert network.context.base_url == network.url
        user_id, key = network.create_user("zoe")
        assert (
            network.call(lambda: network.context.identity.authenticate_api_key(key))[0] == user_id
        )
    network.stop()  # twice is safe
    with pytest.raises(NetworkNotRunningError):
        network.call(lambda: None)


def test_restart_keeps_orgs_keys_agents_and_keysets(tmp_path: Path) -> None:
    with LocalNetwork(config(tmp_path)) as first:
        dev_key = first.api_key
        keysets = first.keysets
        _, user_key = first.create_user("persisted")
        client = BackendClient(first.url)
        agent = client.publish(user_key, make_card("durable"), listing="private", expect=201).body[
            "agent"
        ]
        refresh_token = client.consumer_token(user_key)["refreshToken"]
        client.close()

    with LocalNetwork(config(tmp_path)) as second:
        assert second.api_key == dev_key
        assert second.keysets == keysets
        client = BackendClient(second.url)
        try:
            assert client.consumer_token(user_key)["userId"]
            kept = client.agent("durable", token=user_key).body["agent"]
            assert (kept["agentId"], kept["registeredAt"]) == (
                agent["agentId"],
                agent["registeredAt"],
            )
            reply = client.post(
                "/api/v1/auth/agent/refresh", {"refreshToken": refresh_token}, protocol=None
            )
            assert reply.status == 200
        finally:
            client.close()


def test_stop_releases_a_held_long_poll_promptly(tmp_path: Path) -> None:
    network = LocalNetwork(config(tmp_path, long_poll_seconds=250)).start()
    try:
        keyset = network.keysets["playground"]
        token = network.call(lambda: grants.task_read_token(keyset, "org_x", "t_1"))
        path = f"{network.url}/v2/subscribe/{keyset.subscribe_key}/u.org_x.t_1/0"
        params = {"uuid": "watcher", "auth": token}
        first = httpx.get(path, params={**params, "tt": "0"}, timeout=10).json()
        finished = threading.Event()

        def hold() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(path, params={**params, "tt": first["t"]["t"]}, timeout=30)
            finished.set()

        poller = threading.Thread(target=hold, name="test-long-poll", daemon=True)
        poller.start()
        # Wait until the server holds the poll (its waiter is registered on the loop).
        log = network.context.realtime.messages
        deadline = time.monotonic() + 10
        while not network.call(lambda: bool(log._log(keyset.subscribe_key, "u.org_x.t_1").waiters)):
            assert time.monotonic() < deadline, "the long poll was never held"
            time.sleep(0.02)
    finally:
        started = time.monotonic()
        network.stop()
    # Below the server's 2 s shutdown grace: the poll was released, not cut off at the deadline.
    assert time.monotonic() - started < SHUTDOWN_TIMEOUT_SECONDS
    assert finished.wait(5), "the held long poll was not released by stop()"
