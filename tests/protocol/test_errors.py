"""Wire error codes and the protocol exception hierarchy."""

from __future__ import annotations

from blocks_network import protocol as p


def test_wire_codes() -> None:
    assert p.API_KEY_INVALID == "API_KEY_INVALID"
    assert p.REFRESH_TOKEN_INVALID == "REFRESH_TOKEN_INVALID"
    assert p.AGENT_FORCED_OFFLINE == "AGENT_FORCED_OFFLINE"
    assert p.BILLING_MODE_MISMATCH == "BillingModeMismatch"
    assert {
        "EMBEDDED_JWT_REVOKED",
        "EMBEDDED_JWT_LOGOUT",
        "EMBEDDED_JWT_KILLED",
        "EMBEDDED_JWT_SCOPE_DRIFT",
        "AGENT_OUT_OF_SCOPE",
    } == p.AUTH_REFRESH_RETRYABLE_CODES
    assert p.STREAM_SETUP_INVALID_ARGUMENT == "InvalidArgument"


def test_terminal_error_texts() -> None:
    assert p.UNSUPPORTED_PROTOCOL_VERSION == "unsupported_protocol_version"
    assert p.INVALID_START_TASK == "invalid_start_task"
    assert p.AGENT_AT_CAPACITY == "agent_at_capacity"
    assert p.STREAM_CRASHED == "stream_crashed"


def test_jsonrpc_codes() -> None:
    assert (
        p.RPC_PARSE_ERROR,
        p.RPC_INVALID_REQUEST,
        p.RPC_METHOD_NOT_FOUND,
        p.RPC_INVALID_PARAMS,
        p.RPC_INTERNAL_ERROR,
    ) == (-32700, -32600, -32601, -32602, -32603)
    app_codes = [
        p.RPC_UNAUTHORIZED,
        p.RPC_FORBIDDEN,
        p.RPC_NOT_FOUND,
        p.RPC_CONFLICT,
        p.RPC_BILLING_MODE_MISMATCH,
        p.RPC_AGENT_UNAVAILABLE,
    ]
    assert len(set(app_codes)) == len(app_codes)
    assert all(-32099 <= code <= -32000 for code in app_codes)


def test_hierarchy() -> None:
    assert issubclass(p.ProtocolError, ValueError)
    assert issubclass(p.AgentCardError, p.ProtocolError)
    assert issubclass(p.RpcRequestError, p.ProtocolError)
    err = p.AgentCardError("io.inputs[0].maxSizeBytes", "must be an integer")
    assert str(err) == "io.inputs[0].maxSizeBytes: must be an integer"
    assert (err.path, err.reason) == ("io.inputs[0].maxSizeBytes", "must be an integer")
    assert str(p.AgentCardError("", "card is empty")) == "card is empty"


def test_handler_error_text() -> None:
    assert p.handler_error_text(RuntimeError("boom")) == "RuntimeError: boom"
    assert p.handler_error_text(KeyError("txt")) == "KeyError: 'txt'"
    assert p.handler_error_text(KeyError()) == "Agent instance error (KeyError)"
