"""JSON-RPC 2.0 envelopes of ``POST /api/v1/rpc`` (§4.1).

Requests carry an object ``params``; errors carry ``data: {code, message, details}`` where
``data.code`` is a wire code from ``errors`` (e.g. ``BillingModeMismatch``). The SDK shows
``data.message`` in preference to ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from ._fields import as_object, type_name
from .errors import RPC_INVALID_PARAMS, RPC_INVALID_REQUEST, ProtocolError, RpcRequestError

__all__ = [
    "JSONRPC_VERSION",
    "METHOD_CANCEL_TASK",
    "METHOD_GET_TASK",
    "METHOD_LIST_TASKS",
    "METHOD_PAUSE_TASK",
    "METHOD_RESUME_TASK",
    "METHOD_RETRY_TASK",
    "METHOD_SEND_MESSAGE",
    "METHOD_TERMINATE_TASK",
    "RPC_METHODS",
    "RpcErrorData",
    "RpcErrorObject",
    "RpcFailure",
    "RpcRequest",
    "RpcResponse",
    "RpcSuccess",
    "parse_rpc_response",
]

JSONRPC_VERSION: Final = "2.0"

METHOD_SEND_MESSAGE: Final = "SendMessage"
METHOD_GET_TASK: Final = "GetTask"
METHOD_LIST_TASKS: Final = "ListTasks"
METHOD_CANCEL_TASK: Final = "CancelTask"
METHOD_PAUSE_TASK: Final = "PauseTask"
METHOD_RESUME_TASK: Final = "ResumeTask"
METHOD_RETRY_TASK: Final = "RetryTask"
METHOD_TERMINATE_TASK: Final = "TerminateTask"
RPC_METHODS: Final = frozenset(
    {
        METHOD_SEND_MESSAGE,
        METHOD_GET_TASK,
        METHOD_LIST_TASKS,
        METHOD_CANCEL_TASK,
        METHOD_PAUSE_TASK,
        METHOD_RESUME_TASK,
        METHOD_RETRY_TASK,
        METHOD_TERMINATE_TASK,
    }
)

RpcId: TypeAlias = str | int | None


def _read_id(obj: Mapping[str, Any]) -> RpcId:
    value = obj.get("id")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RpcRequestError(
        f"JSON-RPC id must be a string, an integer or null, got {type_name(value)}",
        rpc_code=RPC_INVALID_REQUEST,
        request_id=None,
    )


@dataclass(frozen=True)
class RpcRequest:
    """``{"jsonrpc":"2.0", id, method, params}`` (params always an object here)."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    id: RpcId = None

    @classmethod
    def from_wire(cls, value: object) -> RpcRequest:
        """Parse a request body; raises RpcRequestError carrying the code to answer with.

        -32600 for a non-object, a wrong ``jsonrpc``, a bad ``id`` or a missing ``method``;
        -32602 when ``params`` is present but not an object.
        """
        if not isinstance(value, Mapping):
            raise RpcRequestError(
                f"JSON-RPC request must be an object, got {type_name(value)}",
                rpc_code=RPC_INVALID_REQUEST,
                request_id=None,
            )
        request_id = _read_id(value)
        if value.get("jsonrpc") != JSONRPC_VERSION:
            raise RpcRequestError(
                'JSON-RPC request must have "jsonrpc": "2.0"',
                rpc_code=RPC_INVALID_REQUEST,
                request_id=request_id,
            )
        method = value.get("method")
        if not isinstance(method, str) or not method:
            raise RpcRequestError(
                "JSON-RPC request needs a non-empty string 'method'",
                rpc_code=RPC_INVALID_REQUEST,
                request_id=request_id,
            )
        params = value.get("params")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise RpcRequestError(
                f"params of {method} must be an object, got {type_name(params)}",
                rpc_code=RPC_INVALID_PARAMS,
                request_id=request_id,
            )
        return cls(method=method, params=dict(params), id=request_id)

    def to_wire(self) -> dict[str, Any]:
        """Return the request body."""
        return {
            "jsonrpc": JSONRPC_VERSION,
            "id": self.id,
            "method": self.method,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class RpcErrorData:
    """``error.data``: a wire code, a human message and optional structured details."""

    code: str
    message: str = ""
    details: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object (``details`` omitted when None)."""
        wire: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            wire["details"] = dict(self.details)
        return wire


@dataclass(frozen=True)
class RpcErrorObject:
    """The JSON-RPC error object (``error`` member): numeric ``code``, ``message``, ``data``?

    Named apart from the SDK's ``RpcError`` exception, which wraps one of these.
    """

    code: int
    message: str
    data: RpcErrorData | None = None

    @property
    def text(self) -> str:
        """What to show a user: ``data.message`` if non-empty, else ``message``."""
        return self.data.message if self.data is not None and self.data.message else self.message

    @property
    def wire_code(self) -> str | None:
        """``data.code`` if present (e.g. ``BillingModeMismatch``)."""
        return None if self.data is None else self.data.code

    def to_wire(self) -> dict[str, Any]:
        """Return the ``error`` member."""
        wire: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            wire["data"] = self.data.to_wire()
        return wire

    @classmethod
    def from_wire(cls, value: object) -> RpcErrorObject:
        """Parse an ``error`` member; a ``data`` without a string ``code`` is ignored.

        Raises ProtocolError when ``code`` is not an integer or ``message`` not a string.
        """
        obj = as_object(value, "JSON-RPC error")
        code = obj.get("code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ProtocolError(f"JSON-RPC error.code: expected an integer, got {type_name(code)}")
        message = obj.get("message", "")
        if not isinstance(message, str):
            raise ProtocolError("JSON-RPC error.message: expected a string")
        return cls(code=code, message=message, data=_parse_data(obj.get("data")))


def _parse_data(value: object) -> RpcErrorData | None:
    # Foreign servers put anything in `data`; only our {code, message, details} shape counts.
    if not isinstance(value, Mapping) or not isinstance(value.get("code"), str):
        return None
    message = value.get("message")
    details = value.get("details")
    return RpcErrorData(
        code=value["code"],
        message=message if isinstance(message, str) else "",
        details=dict(details) if isinstance(details, Mapping) else None,
    )


@dataclass(frozen=True)
class RpcSuccess:
    """A response carrying ``result``."""

    id: RpcId
    result: Any

    def to_wire(self) -> dict[str, Any]:
        """Return the response body."""
        return {"jsonrpc": JSONRPC_VERSION, "id": self.id, "result": self.result}


@dataclass(frozen=True)
class RpcFailure:
    """A response carrying ``error``."""

    id: RpcId
    error: RpcErrorObject

    def to_wire(self) -> dict[str, Any]:
        """Return the response body."""
        return {"jsonrpc": JSONRPC_VERSION, "id": self.id, "error": self.error.to_wire()}


RpcResponse: TypeAlias = RpcSuccess | RpcFailure


def parse_rpc_response(value: object) -> RpcResponse:
    """Parse a response body: ``error`` wins over ``result``.

    Raises ProtocolError when it is not an object or has neither member.
    """
    obj = as_object(value, "JSON-RPC response")
    raw_id = obj.get("id")
    valid_id = isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool)
    response_id: RpcId = raw_id if valid_id else None
    if obj.get("error") is not None:
        return RpcFailure(response_id, RpcErrorObject.from_wire(obj["error"]))
    if "result" in obj:
        return RpcSuccess(response_id, obj["result"])
    raise ProtocolError("JSON-RPC response has neither 'result' nor 'error'")
