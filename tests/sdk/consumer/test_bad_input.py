"""Bad input from issue 5: each raises a typed error that says what to do; nothing hangs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import (
    ApiKeyInvalidError,
    ArtifactError,
    BillingModeMismatchError,
    ConfigError,
    NetworkError,
    RpcError,
    TaskClient,
    file_part,
    text_part,
)
from blocks_network.protocol.constants import MAX_UPLOAD_BYTES
from tests.sdk.consumer.responder import Responder
from tests.sdk.stub_server import dead_url, stub_server


@pytest.mark.parametrize("mode", ["gratis", "Free", "", None])
def test_wrong_billing_mode(blocks_env: dict[str, str], mode: object) -> None:
    with pytest.raises(ConfigError, match="billing_mode must be 'free'") as info:
        TaskClient.create(mode)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_billing_mode_mismatch(make_client: Callable[..., TaskClient], agent: Responder) -> None:
    client = make_client("paid")
    with pytest.raises(BillingModeMismatchError) as info:
        client.send_message(agent_name="echo", request_parts=[text_part("x")])
    assert (info.value.expected, info.value.got) == ("free", "paid")
    assert "billing_mode='free'" in str(info.value)


def test_missing_credentials(blocks_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BLOCKS_API_KEY")
    with pytest.raises(ConfigError, match=r"no credentials.*BLOCKS_API_KEY"):
        TaskClient.create("free")


def test_several_credentials(blocks_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="several credentials"):
        TaskClient.create("free", api_key="bk_x", token_endpoint="http://127.0.0.1:9/t")


def test_revoked_or_unknown_api_key(blocks_env: dict[str, str]) -> None:
    with pytest.raises(ApiKeyInvalidError, match="API key invalid or revoked") as info:
        TaskClient.create("free", api_key="bk_not_a_real_key")
    assert str(info.value).count("API key invalid or revoked") == 1  # not said twice


def test_unreachable_cdm(blocks_env: dict[str, str]) -> None:
    url = dead_url() + "/config.json"
    started = time.monotonic()
    with pytest.raises(NetworkError, match="could not fetch the Blocks config from") as info:
        TaskClient.create("free", cdm_url=url)
    assert "blocks devnet" in str(info.value) and "BLOCKS_CDM_URL" in str(info.value)
    assert time.monotonic() - started < 3


def test_unreachable_backend(blocks_env: dict[str, str], network: LocalNetwork) -> None:
    backend = dead_url()
    doc = {
        "playground": {"publishKey": "pub-c-1", "subscribeKey": "sub-c-1"},
        "network": {"publishKey": "pub-c-2", "subscribeKey": "sub-c-2"},
        "api": {"baseUrl": backend},
    }
    started = time.monotonic()
    with stub_server(lambda r: (200, doc)) as cdm, pytest.raises(NetworkError) as info:
        TaskClient.create("free", cdm_url=cdm.url)
    assert f"could not reach the Blocks backend at {backend}" in str(info.value)
    assert time.monotonic() - started < 10


def test_unknown_task_id(client: TaskClient) -> None:
    for call in (client.get_task, client.connect, client.cancel_task):
        with pytest.raises(RpcError) as info:
            call("t_nope")
        assert info.value.code == "TASK_NOT_FOUND"


def test_unknown_agent(client: TaskClient) -> None:
    with pytest.raises(RpcError, match="not found") as info:
        client.send_message(agent_name="no_such_agent", request_parts=[text_part("x")])
    assert info.value.code == "AGENT_NOT_FOUND"


def test_part_id_the_card_does_not_declare(client: TaskClient, agent: Responder) -> None:
    with pytest.raises(RpcError, match="not an input of agent 'echo'"):
        client.send_message(agent_name="echo", request_parts=[text_part("x", part_id="nope")])


def test_missing_file_path(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such file"):
        file_part(tmp_path / "missing.csv")


def test_file_over_the_ceiling(client: TaskClient, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="25 MiB"):
        client.send_message(
            agent_name="echo",
            request_parts=[{"partId": "text", "file": bytes(MAX_UPLOAD_BYTES + 1)}],
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task_kind": "pipe"}, "pipe task needs an integer duration"),
        ({"task_kind": "pipe", "duration": 0}, "pipe task needs an integer duration"),
        ({"duration": 5}, "only pipe tasks take a duration"),
        ({"task_kind": "batch"}, "taskKind"),
    ],
)
def test_bad_task_kind_and_duration(
    client: TaskClient, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        client.send_message(agent_name="echo", request_parts=[text_part("x")], **kwargs)  # type: ignore[arg-type]


def test_bad_arguments(client: TaskClient) -> None:
    with pytest.raises(ConfigError, match="agent_name"):
        client.send_message(agent_name="", request_parts=[text_part("x")])
    with pytest.raises(ConfigError, match="list of parts"):
        client.send_message(agent_name="echo", request_parts=text_part("x"))  # type: ignore[arg-type]
