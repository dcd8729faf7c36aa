"""Reads of task records, the registry and task read tokens; SendMessage params (§4.1, §4.4, §5.7).

Plain functions over :class:`RpcClient` / :class:`BackendClient`, used by ``TaskClient``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blocks_network.consumer.backend import BackendClient
from blocks_network.consumer.registry_client import RegistryClient
from blocks_network.consumer.rpc_client import RpcClient
from blocks_network.errors import BackendError
from blocks_network.protocol.constants import (
    API_PATH_TASK_READ_TOKEN,
    TASK_READ_TOKEN_TIMEOUT_S,
)
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.rpc import METHOD_GET_TASK, METHOD_LIST_TASKS
from blocks_network.protocol.task_api import (
    TaskInfo,
    TaskReadTokenRequest,
    TaskReadTokenResponse,
)
from blocks_network.transport.http_client import HttpResponse

__all__ = [
    "TaskList",
    "get_agent_card",
    "get_task",
    "list_tasks",
    "read_token",
    "read_token_answer",
    "send_params",
    "task_info",
]

_MAX_TEXT = 300


@dataclass(frozen=True)
class TaskList:
    """One page of ``list_tasks``: ``tasks``, the ``next`` cursor and ``total_count``."""

    tasks: list[TaskInfo]
    next: str | None = None
    total_count: int | None = None


def get_task(rpc: RpcClient, task_id: str) -> TaskInfo:
    """RPC GetTask; raises RpcError (``TASK_NOT_FOUND``) for an unknown or foreign task."""
    return task_info(rpc.call(METHOD_GET_TASK, {"taskId": task_id}))


def task_info(result: Any) -> TaskInfo:
    """GetTask's ``result`` as a record (sync and async clients alike)."""
    try:
        return TaskInfo.from_wire(result)
    except ProtocolError as exc:
        raise BackendError(f"GetTask returned an unexpected result: {exc}") from exc


def list_tasks(
    rpc: RpcClient,
    *,
    owner_id: str | None = None,
    agent_name: str | None = None,
    state: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> TaskList:
    """RPC ListTasks (only the filters given are sent)."""
    params = {
        k: v
        for k, v in (
            ("ownerId", owner_id),
            ("agentName", agent_name),
            ("state", state),
            ("limit", limit),
            ("cursor", cursor),
        )
        if v is not None
    }
    result = rpc.call(METHOD_LIST_TASKS, params)
    if not isinstance(result, Mapping) or not isinstance(result.get("tasks"), list):
        raise BackendError(f"ListTasks returned an unexpected result: {result!r:.200}")
    try:
        tasks = [TaskInfo.from_wire(t) for t in result["tasks"]]
    except ProtocolError as exc:
        raise BackendError(f"ListTasks returned an unexpected task: {exc}") from exc
    next_cursor = result.get("next")
    total = result.get("totalCount")
    return TaskList(
        tasks,
        next_cursor if isinstance(next_cursor, str) and next_cursor else None,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def get_agent_card(backend: BackendClient, name: str) -> dict[str, Any] | None:
    """``agent.card`` from the registry, or None when no such agent is visible.

    An empty card while holding a credential may mean a stale token: one refresh and one
    retry (§5.7).
    """
    registry = RegistryClient(backend)
    for attempt in (1, 2):
        agent = registry.get(name)
        if agent is None:
            return None
        card = agent.get("card")
        if isinstance(card, Mapping) and card:
            return dict(card)
        if attempt == 1 and backend.auth is not None:
            backend.auth.refresh_after_rejection(backend.auth.token)
    return None


def read_token(backend: BackendClient, task_id: str, role: str) -> TaskReadTokenResponse:
    """``POST /api/v1/auth/task-read-token`` (15 s; one refresh + retry on 401)."""
    body = TaskReadTokenRequest(task_id, role).to_wire()
    response = backend.request(
        "POST", API_PATH_TASK_READ_TOKEN, json_body=body, timeout=TASK_READ_TOKEN_TIMEOUT_S
    )
    return read_token_answer(response)


def read_token_answer(response: HttpResponse) -> TaskReadTokenResponse:
    """task-read-token's answer as a grant, or the BackendError it stands for."""
    if response.status != 200:
        raise BackendError(
            f"task-read-token request failed with status {response.status}: "
            f"{response.text.strip()[:_MAX_TEXT]}",
            status=response.status,
        )
    try:
        return TaskReadTokenResponse.from_wire(response.json())
    except ProtocolError as exc:
        raise BackendError(f"task-read-token returned an unexpected body: {exc}") from exc


def send_params(
    *,
    agent_name: str,
    billing_mode: str,
    request_parts: list[dict[str, Any]],
    owner_id: str,
    idempotency_key: str | None,
    upload_session_id: str | None,
    stream: bool | None,
    task_kind: str | None,
    duration: int | None,
    consumer_public_key: str | None,
    push_notification_config: Mapping[str, Any] | None,
    retry_policy: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """SendMessage params in wire form (``extensions`` only when a blocks field is set)."""
    wire: dict[str, Any] = {
        "agentName": agent_name,
        "billingMode": billing_mode,
        "requestParts": request_parts,
        "ownerId": owner_id,
    }
    optional = {
        "idempotencyKey": idempotency_key,
        "uploadSessionId": upload_session_id,
        "pushNotificationConfig": push_notification_config,
        "retryPolicy": retry_policy,
    }
    wire.update({k: v for k, v in optional.items() if v is not None})
    blocks = {
        k: v
        for k, v in (
            ("stream", stream),
            ("taskKind", task_kind),
            ("duration", duration),
            ("consumerPublicKey", consumer_public_key),
        )
        if v is not None
    }
    if blocks:
        wire["extensions"] = {"blocks": blocks}
    return wire
