"""The one registry client (§5.7) against a scripted backend: bearer, errors, callers."""

from __future__ import annotations

import pytest

from blocks_network.agent.startup import lookup_registry
from blocks_network.consumer.registry_client import RegistryClient
from blocks_network.errors import BackendError, ConfigError
from blocks_network.protocol.constants import API_PATH_REGISTRY_AGENTS
from blocks_network.transport.http_client import HttpClient
from tests.sdk.stub_server import Recorded, stub_server

API_KEY = "bk_test_key"


def refuse(_request: Recorded) -> tuple[int, object]:
    return 500, {"message": "registry database is busy"}


def test_a_refusal_reads_as_the_spec_says_and_the_raw_key_is_sent_once() -> None:
    with (
        stub_server(refuse) as stub,
        RegistryClient.with_api_key(stub.url, API_KEY) as registry,
        pytest.raises(BackendError) as info,
    ):
        registry.get("echo")
    assert str(info.value) == "[AgentRegistry] Request failed: registry database is busy"
    assert info.value.status == 500
    (request,) = stub.requests  # an API key is never "refreshed": no second try
    assert request.path == f"{API_PATH_REGISTRY_AGENTS}?agentName=echo"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_the_agent_runtime_lookup_uses_it_and_reports_a_config_error() -> None:
    http = HttpClient()
    try:
        with stub_server(refuse) as stub, pytest.raises(ConfigError) as info:
            lookup_registry(http, stub.url, API_KEY, "echo")
    finally:
        http.close()
    assert str(info.value) == "[AgentRegistry] Request failed: registry database is busy"


def test_a_record_and_a_missing_agent() -> None:
    record = {"agentName": "echo", "billingMode": "paid", "listing": "private", "card": {}}

    def answer(request: Recorded) -> tuple[int, object]:
        return (200, {"agent": record}) if "agentName=echo" in request.path else (404, {})

    http = HttpClient()
    try:
        with stub_server(answer) as stub:
            found = lookup_registry(http, stub.url, API_KEY, "echo")
            missing = lookup_registry(http, stub.url, API_KEY, "other")
    finally:
        http.close()
    assert found is not None and (found.billing_mode, found.listing) == ("paid", "private")
    assert missing is None
