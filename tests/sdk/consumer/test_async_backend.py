"""The async backend client against a real local network: same RPCs, errors and 401 refresh
as the sync one (anyio's pytest plugin, asyncio backend)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import RpcError, TokenResult
from blocks_network.auth.consumer_auth import ConsumerAuth
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.consumer.async_backend import AsyncBackendClient
from blocks_network.consumer.backend import BackendClient
from blocks_network.consumer.rpc_client import RpcClient
from blocks_network.protocol.rpc import METHOD_SEND_MESSAGE
from blocks_network.transport.async_http import AsyncHttpClient
from blocks_network.transport.http_client import HttpClient
from tests.sdk.consumer.responder import Responder, silent
from tests.sdk.consumer.test_token_modes import exchange

pytestmark = pytest.mark.anyio


class _Tokens:
    """A token provider whose first token the backend refuses."""

    def __init__(self, network: LocalNetwork) -> None:
        self.network = network
        self.calls = 0

    def __call__(self) -> TokenResult:
        self.calls += 1
        if self.calls == 1:
            return TokenResult("not-a-jwt", 3600, self.network.dev_identity.user_id)
        data = exchange(self.network)
        return TokenResult(data["accessToken"], 3600, data["userId"])


@pytest.fixture
def http() -> Iterator[HttpClient]:
    client = HttpClient()
    yield client
    client.close()


def _auth(network: LocalNetwork, http: HttpClient, provider: _Tokens) -> ConsumerAuth:
    auth = ConsumerAuth.from_options(
        http=http,
        base_url=network.url,
        api_key=None,
        token_endpoint=None,
        token_provider=provider,
        on_auth_error=None,
    )
    auth.start()
    return auth


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    """The blocking-call pool the backend refreshes tokens on."""
    pool = BlockingCalls(max_workers=2)
    yield pool
    pool.close()


def _params(network: LocalNetwork, agent_name: str) -> dict[str, Any]:
    return {
        "agentName": agent_name,
        "billingMode": "free",
        "ownerId": network.dev_identity.user_id,
        "requestParts": [{"partId": "text", "text": "hi"}],
    }


async def test_a_refused_token_is_refreshed_once_and_the_call_retried(
    network: LocalNetwork, agent: Responder, http: HttpClient, calls: BlockingCalls
) -> None:
    agent.handler = silent
    tokens = _Tokens(network)
    auth = _auth(network, http, tokens)
    try:
        async with AsyncHttpClient() as client:
            backend = AsyncBackendClient(client, calls.run, network.url, auth)
            result = await backend.call(METHOD_SEND_MESSAGE, _params(network, "echo"))
    finally:
        auth.destroy()
    assert isinstance(result, dict) and result["taskId"]
    assert tokens.calls == 2  # 401 → one refresh → retry
    assert agent.started.get(timeout=10).task_id == result["taskId"]


async def test_rpc_errors_are_the_sync_clients_errors(
    network: LocalNetwork, http: HttpClient, calls: BlockingCalls
) -> None:
    auth = _auth(network, http, _Tokens(network))
    params = _params(network, "no_such_agent")
    try:
        with pytest.raises(RpcError) as sync_error:
            RpcClient(BackendClient(http, network.url, auth)).call(METHOD_SEND_MESSAGE, params)
        async with AsyncHttpClient() as client:
            backend = AsyncBackendClient(client, calls.run, network.url, auth)
            with pytest.raises(RpcError) as async_error:
                await backend.call(METHOD_SEND_MESSAGE, params)
    finally:
        auth.destroy()
    assert type(async_error.value) is type(sync_error.value)
    assert str(async_error.value) == str(sync_error.value)
    assert async_error.value.rpc_code == sync_error.value.rpc_code
    assert async_error.value.status == sync_error.value.status
