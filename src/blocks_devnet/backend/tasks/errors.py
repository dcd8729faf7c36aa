"""The task service's refusals and the one table mapping them to JSON-RPC codes.

Operations raise :class:`~blocks_devnet.backend.errors.BackendError` (HTTP status + wire
code + a sentence saying what to do); ``rpc.py`` turns one into
``{"code": <int>, "message", "data": {"code", "message", "details"?}}`` with
:func:`rpc_code_for`. HTTP routes (files, read tokens) answer the same exception from the
backend's error table.
"""

from __future__ import annotations

from typing import Any, Final

from blocks_devnet.backend.errors import (
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_PROTOCOL_VERSION,
    BackendError,
)
from blocks_network.protocol import errors as wire

# Wire codes the protocol module does not name yet.
# TODO(protocol): move AGENT_UNAVAILABLE / AGENT_BACKLOG_FULL / TASK_CONFLICT /
# ANON_TASK_ACCESS_DENIED / UPLOAD_* to blocks_network.protocol.errors.
AGENT_UNAVAILABLE: Final = "AGENT_UNAVAILABLE"
"""No instance of the agent is online (or it is forced offline): nothing can run the task."""
AGENT_BACKLOG_FULL: Final = "AGENT_BACKLOG_FULL"
"""Every instance is busy and the agent's maxPendingBacklog queue is full."""
TASK_CONFLICT: Final = "TASK_CONFLICT"
"""The task's state forbids the operation (e.g. pausing a finished task)."""
ANON_TASK_ACCESS_DENIED: Final = "ANON_TASK_ACCESS_DENIED"
UPLOAD_NOT_FOUND: Final = "UPLOAD_NOT_FOUND"
UPLOAD_INCOMPLETE: Final = "UPLOAD_INCOMPLETE"

_RPC_BY_CODE: Final[dict[str, int]] = {
    wire.BILLING_MODE_MISMATCH: wire.RPC_BILLING_MODE_MISMATCH,
    AGENT_UNAVAILABLE: wire.RPC_AGENT_UNAVAILABLE,
    AGENT_BACKLOG_FULL: wire.RPC_AGENT_UNAVAILABLE,
    TASK_CONFLICT: wire.RPC_CONFLICT,
    wire.TASK_NOT_FOUND: wire.RPC_NOT_FOUND,
    wire.AGENT_NOT_FOUND: wire.RPC_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION: wire.RPC_INVALID_REQUEST,
    PAYLOAD_TOO_LARGE: wire.RPC_INVALID_PARAMS,
}
_RPC_BY_STATUS: Final[dict[int, int]] = {
    400: wire.RPC_INVALID_PARAMS,
    401: wire.RPC_UNAUTHORIZED,
    403: wire.RPC_FORBIDDEN,
    404: wire.RPC_NOT_FOUND,
    409: wire.RPC_CONFLICT,
    413: wire.RPC_INVALID_PARAMS,
}


def rpc_code_for(error: BackendError) -> int:
    """The JSON-RPC ``error.code`` for a refusal (by wire code first, then HTTP status)."""
    return _RPC_BY_CODE.get(error.code) or _RPC_BY_STATUS.get(error.status, wire.RPC_INTERNAL_ERROR)


def invalid_params(message: str, *, details: dict[str, Any] | None = None) -> BackendError:
    return BackendError(400, wire.INVALID_REQUEST, message, details=details)


def task_not_found(task_id: str) -> BackendError:
    # The same answer whether the task is missing or someone else's: ids must not leak.
    return BackendError(
        404,
        wire.TASK_NOT_FOUND,
        f"Task {task_id!r} not found: check the id; you can only see your own tasks and "
        "tasks of your organisation's agents.",
    )


def agent_not_found(agent_name: str) -> BackendError:
    return BackendError(
        404,
        wire.AGENT_NOT_FOUND,
        f"Agent {agent_name!r} not found: check the name, or publish it first (`blocks publish`).",
    )


def billing_mode_mismatch(agent_name: str, expected: str, got: str) -> BackendError:
    return BackendError(
        400,
        wire.BILLING_MODE_MISMATCH,
        f"Agent {agent_name!r} is registered with billing mode {expected!r} but the request "
        f"used {got!r}: create the TaskClient with billing_mode={expected!r}.",
        details={"expected": expected, "got": got},
    )


def agent_unavailable(agent_name: str, why: str) -> BackendError:
    return BackendError(503, AGENT_UNAVAILABLE, f"Agent {agent_name!r} cannot take tasks: {why}")


def backlog_full(agent_name: str, backlog: int) -> BackendError:
    return BackendError(
        429,
        AGENT_BACKLOG_FULL,
        f"Agent {agent_name!r} is busy: every instance is at capacity and its backlog of "
        f"{backlog} pending task(s) is full. Retry later, or start more instances.",
        details={"maxPendingBacklog": backlog},
    )


def conflict(message: str) -> BackendError:
    return BackendError(409, TASK_CONFLICT, message)


def forbidden(message: str) -> BackendError:
    return BackendError(403, wire.FORBIDDEN, message)
