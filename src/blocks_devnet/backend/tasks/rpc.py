"""``POST /api/v1/rpc``: JSON-RPC 2.0 front of the task service (protocol.md §4.1).

Errors use the JSON-RPC envelope with ``data: {code, message, details?}``:
-32700 body is not JSON, -32600 not a JSON-RPC request (or an unsupported
``Blocks-Protocol-Version``), -32601 unknown method, -32602 bad params, and the
application codes of :mod:`.errors`. They are answered with HTTP 200 so the SDK can show
the message, except a missing, bad or expired bearer, which is HTTP 401 (the SDK refreshes
its token on 401 and retries once). Nothing here answers 500: an unexpected bug becomes
-32603 and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from aiohttp import web

from blocks_devnet.backend.authn import authenticate
from blocks_devnet.backend.context import context_of
from blocks_devnet.backend.errors import BackendError
from blocks_devnet.backend.http import MAX_JSON_BODY_BYTES, check_protocol_version, json_response
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks import control
from blocks_devnet.backend.tasks.errors import rpc_code_for
from blocks_devnet.backend.tasks.params import (
    parse_list_tasks,
    parse_reason,
    parse_send_message,
    parse_task_id,
)
from blocks_devnet.backend.tasks.service import TaskService
from blocks_devnet.json_input import parse_json
from blocks_network.protocol import rpc as wire_rpc
from blocks_network.protocol.constants import API_PATH_RPC
from blocks_network.protocol.errors import (
    INVALID_REQUEST,
    RPC_INTERNAL_ERROR,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_PARSE_ERROR,
    RpcRequestError,
)
from blocks_network.protocol.rpc import (
    RpcErrorData,
    RpcErrorObject,
    RpcFailure,
    RpcId,
    RpcRequest,
    RpcSuccess,
)

logger = logging.getLogger(__name__)

Params = Mapping[str, Any]
Method = Callable[[TaskService, Principal, Params], dict[str, Any]]


def _send_message(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    return service.send_message(principal, parse_send_message(params))


def _get_task(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    return service.get_task(principal, parse_task_id(params, wire_rpc.METHOD_GET_TASK))


def _list_tasks(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    return service.list_tasks(principal, parse_list_tasks(params))


def _cancel(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    task_id = parse_task_id(params, wire_rpc.METHOD_CANCEL_TASK)
    return control.cancel(service, principal, task_id, parse_reason(params))


def _terminate(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    return control.terminate(
        service, principal, parse_task_id(params, wire_rpc.METHOD_TERMINATE_TASK)
    )


def _pause(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    return control.pause(service, principal, parse_task_id(params, wire_rpc.METHOD_PAUSE_TASK))


def _resume(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    return control.resume(service, principal, parse_task_id(params, wire_rpc.METHOD_RESUME_TASK))


def _retry(service: TaskService, principal: Principal, params: Params) -> dict[str, Any]:
    return control.retry(service, principal, parse_task_id(params, wire_rpc.METHOD_RETRY_TASK))


#: method → (implementation, whether it changes state: mutations carry X-Write-Affinity).
METHODS: Final[dict[str, tuple[Method, bool]]] = {
    wire_rpc.METHOD_SEND_MESSAGE: (_send_message, True),
    wire_rpc.METHOD_GET_TASK: (_get_task, False),
    wire_rpc.METHOD_LIST_TASKS: (_list_tasks, False),
    wire_rpc.METHOD_CANCEL_TASK: (_cancel, True),
    wire_rpc.METHOD_PAUSE_TASK: (_pause, True),
    wire_rpc.METHOD_RESUME_TASK: (_resume, True),
    wire_rpc.METHOD_RETRY_TASK: (_retry, True),
    wire_rpc.METHOD_TERMINATE_TASK: (_terminate, True),
}


def _failure(
    request_id: RpcId,
    code: int,
    message: str,
    wire_code: str,
    details: Any = None,
    *,
    status: int = 200,
) -> web.Response:
    error = RpcErrorObject(
        code=code,
        message=message,
        data=RpcErrorData(code=wire_code, message=message, details=details),
    )
    return json_response(RpcFailure(request_id, error).to_wire(), status=status)


def _from_backend_error(request_id: RpcId, exc: BackendError) -> web.Response:
    status = 401 if exc.status == 401 else 200
    return _failure(
        request_id, rpc_code_for(exc), exc.message, exc.code, exc.details, status=status
    )


async def handle_rpc(request: web.Request) -> web.Response:
    """Serve one JSON-RPC request (batches are not part of the protocol: -32600)."""
    ctx = context_of(request)
    try:
        check_protocol_version(request)
        principal = authenticate(request)
    except BackendError as exc:
        return _from_backend_error(None, exc)
    if request.content_length is not None and request.content_length > MAX_JSON_BODY_BYTES:
        return _failure(
            None,
            RPC_INVALID_REQUEST,
            f"Request body over {MAX_JSON_BODY_BYTES} bytes.",
            INVALID_REQUEST,
        )
    raw = await request.read()
    if len(raw) > MAX_JSON_BODY_BYTES:
        return _failure(
            None,
            RPC_INVALID_REQUEST,
            f"Request body over {MAX_JSON_BODY_BYTES} bytes.",
            INVALID_REQUEST,
        )
    try:
        body = parse_json(raw)
    except ValueError as exc:
        return _failure(
            None,
            RPC_PARSE_ERROR,
            f"Parse error: the body is not valid JSON ({exc}).",
            INVALID_REQUEST,
        )
    try:
        rpc = RpcRequest.from_wire(body)
    except RpcRequestError as exc:
        return _failure(exc.request_id, exc.rpc_code, str(exc), INVALID_REQUEST)
    entry = METHODS.get(rpc.method)
    if entry is None:
        return _failure(
            rpc.id,
            RPC_METHOD_NOT_FOUND,
            f"Method {rpc.method[:64]!r} not found; methods: {', '.join(sorted(METHODS))}.",
            INVALID_REQUEST,
        )
    method, mutation = entry
    try:
        result = method(ctx.tasks, principal, rpc.params)
    except BackendError as exc:
        return _from_backend_error(rpc.id, exc)
    except Exception:
        logger.exception("RPC %s failed", rpc.method)
        return _failure(
            rpc.id,
            RPC_INTERNAL_ERROR,
            "Internal error: the local network logged the details.",
            "INTERNAL",
        )
    return json_response(RpcSuccess(rpc.id, result).to_wire(), mutation=mutation)


def add_routes(app: web.Application) -> None:
    """Mount ``POST /api/v1/rpc``."""
    app.router.add_post(API_PATH_RPC, handle_rpc)
