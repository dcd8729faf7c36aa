"""Malformed JSON-RPC input gets the protocol's error shape, never a 500 (§4.1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from blocks_devnet.backend.principal import Principal
from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.constants import API_PATH_RPC
from blocks_network.protocol.errors import (
    RPC_INVALID_PARAMS,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_PARSE_ERROR,
    RPC_UNAUTHORIZED,
)
from tests.support.task_rpc import Consumer, register_agent


@pytest.fixture
def consumer(local_network: LocalNetwork) -> Iterator[Consumer]:
    client = Consumer(local_network)
    yield client
    client.close()


def raw_call(consumer: Consumer, raw: bytes, **kw: Any) -> Any:
    kw.setdefault("token", consumer.token)
    return consumer.api.post(API_PATH_RPC, raw=raw, **kw)


def test_missing_bearer_is_http_401_with_a_json_rpc_error(consumer: Consumer) -> None:
    reply = consumer.rpc("GetTask", {"taskId": "t"}, token=None)
    assert reply.status == 401
    assert reply.body["error"]["code"] == RPC_UNAUTHORIZED
    assert reply.body["jsonrpc"] == "2.0"


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_bad_bearer_is_401(consumer: Consumer, token: str) -> None:
    reply = consumer.rpc("GetTask", {"taskId": "t"}, token=token)
    assert reply.status == 401 and reply.body["error"]["data"]["code"] == "TOKEN_INVALID"


def test_expired_bearer_is_401(local_network: LocalNetwork, consumer: Consumer) -> None:
    identity = local_network.dev_identity
    principal = Principal(user_id=identity.user_id, org_id=identity.org_id, kind="consumer")
    expired = local_network.call(lambda: local_network.context.jwt.issue(principal, -10))
    reply = consumer.rpc("GetTask", {"taskId": "t"}, token=expired)
    assert reply.status == 401 and reply.body["error"]["data"]["code"] == "TOKEN_EXPIRED"


def test_unsupported_protocol_version_is_refused(consumer: Consumer) -> None:
    reply = consumer.rpc("GetTask", {"taskId": "t"}, protocol="1999-01-01")
    assert reply.status == 200
    assert reply.body["error"]["code"] == RPC_INVALID_REQUEST
    assert reply.body["error"]["data"]["code"] == "UNSUPPORTED_PROTOCOL_VERSION"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", RPC_PARSE_ERROR),
        (b"", RPC_PARSE_ERROR),
        (b"\xff\xfe", RPC_PARSE_ERROR),
        (b"[" * 100_000, RPC_PARSE_ERROR),
        (b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"taskId":NaN}}', RPC_PARSE_ERROR),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"taskId":"\\udc00"}}',
            RPC_PARSE_ERROR,
        ),
        (b"[]", RPC_INVALID_REQUEST),
        (b'[{"jsonrpc":"2.0","id":1,"method":"GetTask"}]', RPC_INVALID_REQUEST),
        (b'"text"', RPC_INVALID_REQUEST),
        (b'{"id":1,"method":"GetTask","params":{}}', RPC_INVALID_REQUEST),
        (b'{"jsonrpc":"1.0","id":1,"method":"GetTask","params":{}}', RPC_INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"params":{}}', RPC_INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":42}', RPC_INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":{"x":1},"method":"GetTask"}', RPC_INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1,"method":"Nope","params":{}}', RPC_METHOD_NOT_FOUND),
        (b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":[1]}', RPC_INVALID_PARAMS),
        (b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{}}', RPC_INVALID_PARAMS),
        (b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"taskId":5}}', RPC_INVALID_PARAMS),
    ],
)
def test_malformed_requests(consumer: Consumer, raw: bytes, code: int) -> None:
    reply = raw_call(consumer, raw)
    assert reply.status == 200, reply.body
    assert reply.body["error"]["code"] == code
    assert reply.body["error"]["message"]
    assert reply.body["error"]["data"]["message"] == reply.body["error"]["message"]


def test_the_request_id_is_echoed(consumer: Consumer) -> None:
    reply = raw_call(consumer, b'{"jsonrpc":"2.0","id":"rpc-7","method":"Nope"}')
    assert reply.body["id"] == "rpc-7"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"agentName": 5, "billingMode": "free", "requestParts": []},
        {"agentName": "echo", "billingMode": "gratis", "requestParts": []},
        {"agentName": "echo", "billingMode": "free"},
        {"agentName": "echo", "billingMode": "free", "requestParts": "text"},
        {"agentName": "echo", "billingMode": "free", "requestParts": [5]},
        {"agentName": "echo", "billingMode": "free", "requestParts": [{"text": 5}]},
        {
            "agentName": "echo",
            "billingMode": "free",
            "requestParts": [{"artifactRef": {"kind": "weird"}}],
        },
        {"agentName": "echo", "billingMode": "free", "requestParts": [], "extensions": []},
        {
            "agentName": "echo",
            "billingMode": "free",
            "requestParts": [],
            "extensions": {"blocks": {"stream": "yes"}},
        },
        {
            "agentName": "echo",
            "billingMode": "free",
            "requestParts": [],
            "extensions": {"blocks": {"taskKind": "batch"}},
        },
        {"agentName": "echo", "billingMode": "free", "requestParts": [], "idempotencyKey": 7},
        {"agentName": "echo-dash", "billingMode": "free", "requestParts": []},
        {
            "agentName": "echo",
            "billingMode": "free",
            "requestParts": [],
            "idempotencyKey": "k" * 300,
        },
    ],
)
def test_bad_send_message_params(consumer: Consumer, params: dict[str, Any]) -> None:
    error = consumer.error("SendMessage", params)
    assert error["code"] == RPC_INVALID_PARAMS, error
    assert error["data"]["code"] == "INVALID_REQUEST"


def test_bad_list_params(consumer: Consumer) -> None:
    foreign_cursors = (
        "WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAsImEiXQ",  # [10**27, "a"]: not a SQLite integer
        "WzEsIlx1ZDgwMCJd",  # [1, "\ud800"]: not storable text
        "not-a-cursor",
    )
    for params in (
        {"limit": "10"},
        {"limit": 1000},
        {"state": "sleeping"},
        {"agentName": 3},
        *({"cursor": cursor} for cursor in foreign_cursors),
    ):
        assert consumer.error("ListTasks", params)["code"] == RPC_INVALID_PARAMS, params


def test_refused_send_stores_nothing(local_network: LocalNetwork, consumer: Consumer) -> None:
    register_agent(local_network, "careful")
    consumer.error(
        "SendMessage",
        {"agentName": "careful", "billingMode": "free", "requestParts": [{"partId": "x"}]},
    )
    assert consumer.call("ListTasks")["totalCount"] == 0
