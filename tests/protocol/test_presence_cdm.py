"""Instance presence state (§9.2) and the CDM config document (§1)."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_network.protocol import (
    DEFAULT_CDM_URL,
    CdmConfig,
    InstancePresence,
    Keyset,
    ProtocolError,
    RealtimeOrigin,
    environment_for_billing_mode,
    resolve_cdm_url,
)

SPEC_PRESENCE = {
    "instanceId": "AG-echo_py-1",
    "activeTasks": 0,
    "concurrency": 1,
    "startedAt": 1717000000000,
    "activeStreams": 0,
    "preferredProtocolVersion": "2026-05-01",
    "protocolVersions": ["2026-05-01"],
}


def test_presence_round_trip_and_capacity() -> None:
    state = InstancePresence.from_wire(SPEC_PRESENCE)
    assert state.to_wire() == SPEC_PRESENCE
    assert state.has_capacity and state.supports("2026-05-01")
    assert not InstancePresence("i", 1, 1, 0).has_capacity
    assert InstancePresence("i", 50, 0, 0).has_capacity


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"activeTasks": True}, "activeTasks: expected an integer"),
        ({"concurrency": -1}, "concurrency: must be ≥ 0"),
        ({"protocolVersions": [1]}, "every entry must be a string"),
        ({"instanceId": None}, "instanceId: missing"),
    ],
)
def test_presence_errors(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        InstancePresence.from_wire({**SPEC_PRESENCE, **patch})


CDM = {
    "playground": {"publishKey": "pub-c-play", "subscribeKey": "sub-c-play"},
    "network": {"publishKey": "pub-c-net", "subscribeKey": "sub-c-net"},
    "api": {"baseUrl": "https://api.example", "clientId": "cid"},
}


def test_cdm_parse_and_keysets() -> None:
    config = CdmConfig.from_wire(CDM)
    assert config.keyset("playground") == Keyset("pub-c-play", "sub-c-play")
    assert config.keyset_for_billing_mode("paid") == Keyset("pub-c-net", "sub-c-net")
    assert config.api_base_url == "https://api.example"
    assert config.realtime is None
    assert config.to_wire() == CDM


def test_cdm_api_is_optional_and_realtime_extension() -> None:
    doc = {
        "playground": CDM["playground"],
        "network": CDM["network"],
        "realtime": {"origin": "127.0.0.1:8765", "ssl": False},
    }
    config = CdmConfig.from_wire(doc)
    assert config.api_base_url == ""
    assert config.api_client_id is None
    assert config.realtime == RealtimeOrigin("127.0.0.1:8765", ssl=False)
    assert CdmConfig.from_wire(config.to_wire()) == config
    assert CdmConfig.from_wire({**doc, "realtime": {"origin": "h:1"}}).realtime == RealtimeOrigin(
        "h:1", ssl=True
    )


def test_cdm_base_url_trailing_slash_is_dropped() -> None:
    doc = {**CDM, "api": {"baseUrl": "http://127.0.0.1:3001/"}}
    assert CdmConfig.from_wire(doc).api_base_url == "http://127.0.0.1:3001"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"network": CDM["network"]}, "CDM config missing playground keys"),
        ({**CDM, "playground": {"publishKey": "p", "subscribeKey": ""}}, "missing playground keys"),
        ({**CDM, "playground": "keys"}, "CDM config missing playground keys"),
        ({"playground": CDM["playground"]}, "CDM config missing network keys"),
        ({**CDM, "network": {"subscribeKey": "s"}}, "CDM config missing network keys"),
        ({**CDM, "api": "x"}, "api: expected an object"),
        ({**CDM, "api": {"baseUrl": 1}}, "baseUrl: expected a string"),
        ({**CDM, "realtime": {"ssl": False}}, "realtime.origin: missing"),
        ({**CDM, "realtime": {"origin": "h:1", "ssl": "no"}}, "ssl: expected a boolean"),
        ([], "CDM config must be a JSON object"),
    ],
)
def test_cdm_errors(doc: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        CdmConfig.from_wire(doc)
    assert isinstance(info.value, ProtocolError)


def test_exact_missing_keys_messages() -> None:
    with pytest.raises(ValueError) as info:
        CdmConfig.from_wire({"network": CDM["network"]})
    assert str(info.value) == "CDM config missing playground keys"
    with pytest.raises(ValueError) as info:
        CdmConfig.from_wire({"playground": CDM["playground"]})
    assert str(info.value) == "CDM config missing network keys"


def test_billing_mode_environment() -> None:
    assert environment_for_billing_mode("free") == "playground"
    assert environment_for_billing_mode("paid") == "network"
    for bad in ["Free", "", None, 1]:
        with pytest.raises(ProtocolError, match="billing mode"):
            environment_for_billing_mode(bad)


def test_resolve_cdm_url() -> None:
    env = {"BLOCKS_CDM_URL": "http://localhost:3001/api/v1/cdm"}
    assert resolve_cdm_url("http://explicit", env) == "http://explicit"
    assert resolve_cdm_url(None, env) == "http://localhost:3001/api/v1/cdm"
    assert resolve_cdm_url("", {"BLOCKS_CDM_URL": ""}) == DEFAULT_CDM_URL
    assert resolve_cdm_url(None, {}) == DEFAULT_CDM_URL
