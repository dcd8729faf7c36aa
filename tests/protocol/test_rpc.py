"""JSON-RPC envelopes (protocol §4.1)."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_network.protocol import (
    RPC_INVALID_PARAMS,
    RPC_INVALID_REQUEST,
    RPC_METHODS,
    ProtocolError,
    RpcErrorData,
    RpcErrorObject,
    RpcFailure,
    RpcRequest,
    RpcRequestError,
    RpcSuccess,
    new_rpc_id,
    parse_rpc_response,
)


def test_request_round_trip() -> None:
    request = RpcRequest("SendMessage", {"agentName": "echo"}, new_rpc_id(1))
    wire = request.to_wire()
    assert wire["jsonrpc"] == "2.0"
    assert RpcRequest.from_wire(wire) == request
    assert RpcRequest.from_wire({"jsonrpc": "2.0", "id": 7, "method": "GetTask"}).params == {}


def test_methods() -> None:
    assert {
        "SendMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "PauseTask",
        "ResumeTask",
        "RetryTask",
        "TerminateTask",
    } == RPC_METHODS


@pytest.mark.parametrize(
    ("wire", "code", "request_id"),
    [
        ([1, 2], RPC_INVALID_REQUEST, None),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "GetTask"}, RPC_INVALID_REQUEST, None),
        ({"jsonrpc": "2.0", "id": True, "method": "GetTask"}, RPC_INVALID_REQUEST, None),
        ({"jsonrpc": "1.0", "id": "a", "method": "GetTask"}, RPC_INVALID_REQUEST, "a"),
        ({"jsonrpc": "2.0", "id": "a"}, RPC_INVALID_REQUEST, "a"),
        ({"jsonrpc": "2.0", "id": "a", "method": ""}, RPC_INVALID_REQUEST, "a"),
        ({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": [1]}, RPC_INVALID_PARAMS, 3),
    ],
)
def test_request_errors_carry_code_and_id(wire: Any, code: int, request_id: Any) -> None:
    with pytest.raises(RpcRequestError) as info:
        RpcRequest.from_wire(wire)
    assert info.value.rpc_code == code
    assert info.value.request_id == request_id


def test_responses_round_trip() -> None:
    success = RpcSuccess("rpc-1-aa", {"taskId": "t"})
    failure = RpcFailure(
        "rpc-1-bb",
        RpcErrorObject(
            -32010, "billing", RpcErrorData("BillingModeMismatch", "use paid", {"a": 1})
        ),
    )
    bare = RpcFailure(None, RpcErrorObject(-32601, "Method not found"))
    for response in (success, failure, bare, RpcSuccess(4, None)):
        assert parse_rpc_response(response.to_wire()) == response


def test_error_wire_shape_and_text() -> None:
    error = RpcErrorObject(-32004, "Not found", RpcErrorData("TASK_NOT_FOUND", "task t not found"))
    assert error.to_wire() == {
        "code": -32004,
        "message": "Not found",
        "data": {"code": "TASK_NOT_FOUND", "message": "task t not found"},
    }
    assert error.text == "task t not found"
    assert error.wire_code == "TASK_NOT_FOUND"
    assert RpcErrorObject(-32603, "Internal error").text == "Internal error"
    assert RpcErrorObject(-1, "outer", RpcErrorData("X", "")).text == "outer"


def test_foreign_error_data_is_ignored() -> None:
    response = parse_rpc_response(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "m", "data": "trace"}}
    )
    assert isinstance(response, RpcFailure)
    assert response.error.data is None


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("x", "expected a JSON object"),
        ({"jsonrpc": "2.0", "id": 1}, "neither 'result' nor 'error'"),
        ({"id": 1, "error": {"code": "E", "message": "m"}}, "error.code: expected an integer"),
        ({"id": 1, "error": {"code": True, "message": "m"}}, "error.code: expected an integer"),
        ({"id": 1, "error": {"code": 1, "message": 2}}, "error.message"),
    ],
)
def test_response_parse_errors(wire: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_rpc_response(wire)
