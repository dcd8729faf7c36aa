"""Config resolution: env reading, CDM fetch and parse, keysets, realtime origin."""

from __future__ import annotations

import time

import pytest

from blocks_network.config import (
    EnvSettings,
    keyset_for,
    load_cdm_config,
    read_env,
    realtime_endpoint,
    resolve_cdm_url,
    resolve_client_config,
)
from blocks_network.errors import ConfigError, NetworkError
from blocks_network.protocol.cdm import CdmConfig
from blocks_network.protocol.constants import ARTIFACT_INLINE_LIMIT_BYTES, DEFAULT_CDM_URL
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import DEFAULT_ORIGIN
from tests.sdk.stub_server import dead_url, stub_server

DOC = {
    "playground": {"publishKey": "pub-p", "subscribeKey": "sub-p"},
    "network": {"publishKey": "pub-n", "subscribeKey": "sub-n"},
    "api": {"baseUrl": "http://backend.example/"},
}


def test_read_env_takes_a_mapping() -> None:
    env = read_env(
        {
            "BLOCKS_CDM_URL": "http://cdm",
            "BLOCKS_API_KEY": " bk_1 ",
            "BLOCKS_SUBSCRIBE_KEY": "",
            "ARTIFACT_INLINE_LIMIT_BYTES": "100",
        }
    )
    assert env == EnvSettings(cdm_url="http://cdm", api_key="bk_1", inline_limit_bytes=100)
    assert read_env({}).inline_limit_bytes == ARTIFACT_INLINE_LIMIT_BYTES
    with pytest.raises(ConfigError, match="ARTIFACT_INLINE_LIMIT_BYTES"):
        read_env({"ARTIFACT_INLINE_LIMIT_BYTES": "lots"})


def test_cdm_url_resolution_order() -> None:
    assert resolve_cdm_url("http://explicit", {"BLOCKS_CDM_URL": "http://env"}) == "http://explicit"
    assert resolve_cdm_url(None, {"BLOCKS_CDM_URL": "http://env"}) == "http://env"
    assert resolve_cdm_url(None, {"BLOCKS_CDM_URL": ""}) == DEFAULT_CDM_URL
    assert resolve_cdm_url(None, EnvSettings(cdm_url="http://e")) == "http://e"


def test_load_cdm_config_and_the_realtime_origin() -> None:
    doc = {**DOC, "realtime": {"origin": "127.0.0.1:9", "ssl": False}}
    with stub_server(lambda r: (200, doc)) as server:
        cdm = load_cdm_config(server.url + "/config.json", HttpClient())
    assert server.requests[0].method == "GET"
    assert "Authorization" not in server.requests[0].headers
    assert cdm.api_base_url == "http://backend.example"
    assert keyset_for(cdm, "free").subscribe_key == "sub-p"
    assert keyset_for(cdm, "network").subscribe_key == "sub-n"
    endpoint = realtime_endpoint(cdm)
    assert (endpoint.origin, endpoint.ssl) == ("127.0.0.1:9", False)
    hosted = realtime_endpoint(CdmConfig.from_wire(DOC))
    assert (hosted.origin, hosted.ssl) == (DEFAULT_ORIGIN, True)
    with pytest.raises(ConfigError):
        keyset_for(cdm, "gratis")


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        (200, {"network": DOC["network"]}, "CDM config missing playground keys"),
        (200, {"playground": DOC["playground"]}, "CDM config missing network keys"),
        (200, b"<html>", "not JSON"),
        (404, {"error": "nope"}, "HTTP 404"),
    ],
)
def test_bad_cdm_documents_are_config_errors(status: int, body: object, match: str) -> None:
    with stub_server(lambda r: (status, body)) as server, pytest.raises(ConfigError, match=match):
        load_cdm_config(server.url, HttpClient())


def test_unreachable_cdm_fails_fast_with_a_hint() -> None:
    url = dead_url() + "/config.json"
    started = time.monotonic()
    with pytest.raises(NetworkError) as info:
        load_cdm_config(url, HttpClient())
    assert time.monotonic() - started < 2  # no retries
    message = str(info.value)
    assert f"could not fetch the Blocks config from {url}" in message
    assert "blocks devnet" in message and "BLOCKS_CDM_URL" in message


def test_client_config_explicit_beats_env_beats_cdm() -> None:
    with stub_server(lambda r: (200, DOC)) as server:
        http = HttpClient()
        env = EnvSettings(subscribe_key="sub-env", backend_url="http://env-backend")
        cfg = resolve_client_config("paid", http=http, env=env, cdm_url=server.url)
        assert (cfg.subscribe_key, cfg.publish_key) == ("sub-env", "pub-n")
        assert cfg.base_url == "http://env-backend"
        cfg = resolve_client_config(
            "free",
            http=http,
            env=env,
            cdm_url=server.url,
            subscribe_key="sub-x",
            base_url="http://b/",
        )
        assert (cfg.subscribe_key, cfg.base_url, cfg.environment) == (
            "sub-x",
            "http://b",
            "playground",
        )
        # The CDM is fetched even when every value is explicit.
        assert len(server.requests) == 2


@pytest.mark.parametrize("mode", ["gratis", "FREE", None, 1])
def test_billing_mode_must_be_free_or_paid(mode: object) -> None:
    with pytest.raises(ConfigError, match="billing_mode must be 'free'"):
        resolve_client_config(mode, http=HttpClient(), env=EnvSettings())


def test_missing_base_url_is_a_config_error() -> None:
    doc = {k: v for k, v in DOC.items() if k != "api"}
    with (
        stub_server(lambda r: (200, doc)) as server,
        pytest.raises(ConfigError, match="no backend URL"),
    ):
        resolve_client_config("free", http=HttpClient(), env=EnvSettings(), cdm_url=server.url)
