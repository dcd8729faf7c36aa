"""AgentAuth against a real local network: connect, refresh, 401 retry, fatal codes (§5.1, §5.2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_network.auth.agent_auth import AgentAuth, ConnectResult, connect_payload
from blocks_network.errors import AgentForcedOfflineError, ApiKeyInvalidError, BackendError
from blocks_network.protocol.constants import API_PATH_FILES_REQUEST_UPLOAD
from blocks_network.transport.http_client import HttpClient


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LocalNetwork]:
    with LocalNetwork(DevnetConfig(port=0, data_dir=tmp_path / "d", long_poll_seconds=5)) as net:
        yield net


@pytest.fixture
def http() -> Iterator[HttpClient]:
    client = HttpClient()
    yield client
    client.close()


def _auth(
    network: LocalNetwork, http: HttpClient, *, api_key: str | None = None, **kw: object
) -> AgentAuth:
    payload = connect_payload(
        agent_name="echo",
        instance_id="AG-echo-11111111-2222-4333-8444-555555555555",
        billing_mode="free",
        listing=None,
        expected_instances=1,
        concurrency=1,
        max_pending_backlog=None,
        max_running_time_sec=None,
        cli_version=None,
    )
    return AgentAuth(http, network.url, api_key or network.api_key, payload, **kw)  # type: ignore[arg-type]


def test_connect_payload_leaves_out_unknowns() -> None:
    payload = connect_payload(
        agent_name="a",
        instance_id="AG-a-x",
        billing_mode="paid",
        listing="private",
        expected_instances=None,
        concurrency=0,
        max_pending_backlog=None,
        max_running_time_sec=30,
        cli_version=None,
    )
    assert payload["sdkLanguage"] == "Python"
    assert payload["protocolVersions"] == ["2026-05-01"]
    assert payload["preferredProtocolVersion"] == "2026-05-01"
    assert payload["concurrency"] == 0 and payload["maxRunningTimeSec"] == 30
    assert "expectedInstances" not in payload and "cliVersion" not in payload
    assert payload["deviceOs"] and payload["sdkVersion"]


def test_connect_returns_the_control_channel(network: LocalNetwork, http: HttpClient) -> None:
    result = _auth(network, http).connect()
    assert result.control_channel is not None and result.control_channel.startswith("agent.")
    assert result.control_channel.endswith(".control")
    assert result.pam_token and result.access_token and result.billing_mode == "free"


def test_a_401_refreshes_once_and_retries(network: LocalNetwork, http: HttpClient) -> None:
    auth = _auth(network, http)
    auth.connect()
    auth._access_token = "not-a-jwt"  # an expired/revoked token as far as the backend knows
    response = auth.request("POST", API_PATH_FILES_REQUEST_UPLOAD, json_body={"role": "nope"})
    # The retry carried a fresh token: the backend now judges the body, not the credential.
    assert response.status == 400
    assert auth.access_token not in (None, "not-a-jwt")


def test_invalid_refresh_token_falls_back_to_connect(
    network: LocalNetwork, http: HttpClient
) -> None:
    reconnected: list[ConnectResult] = []
    auth = _auth(network, http, on_reconnect=reconnected.append)
    auth.connect()
    auth._refresh_token = "rt_garbage"
    auth.refresh()
    assert len(reconnected) == 1 and reconnected[0].pam_token


def test_invalid_api_key_is_typed(network: LocalNetwork, http: HttpClient) -> None:
    with pytest.raises(ApiKeyInvalidError, match="API key invalid or revoked") as info:
        _auth(network, http, api_key="bk_wrong").connect()
    assert str(info.value).count("API key invalid or revoked") == 1  # not said twice


def test_forced_offline_is_typed_on_connect_and_refresh(
    network: LocalNetwork, http: HttpClient
) -> None:
    auth = _auth(network, http)
    auth.connect()
    network.call(lambda: network.context.registry.set_forced_offline("echo", True))
    with pytest.raises(AgentForcedOfflineError, match="must be re-enabled"):
        auth.refresh()
    with pytest.raises(AgentForcedOfflineError):
        auth.connect()


def test_other_failures_are_backend_errors(network: LocalNetwork, http: HttpClient) -> None:
    auth = _auth(network, http)
    auth.update_payload(billingMode="paid")  # echo is registered free
    with pytest.raises(BackendError, match="Agent connect failed") as info:
        auth.connect()
    assert info.value.status == 409
