"""Read-side operations of the task service: GetTask, ListTasks and read tokens.

Only a task's owner or a member of its agent's organisation may see it; every other case
answers exactly like a missing task, so task ids do not leak.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from blocks_devnet.backend.errors import BackendError
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks import errors
from blocks_devnet.backend.tasks.params import ListTasksParams
from blocks_devnet.backend.tasks.store import TaskFilter
from blocks_devnet.backend.tasks.views import status_channel, task_object
from blocks_devnet.store.cursor import InvalidCursor
from blocks_network.protocol.constants import (
    BILLING_MODE_FREE,
    LISTING_PUBLIC,
    TASK_READ_TOKEN_ROLE_CONSUMER,
    TASK_READ_TOKEN_ROLES,
)
from blocks_network.protocol.task_api import TaskReadTokenResponse

if TYPE_CHECKING:
    from blocks_devnet.backend.tasks.service import TaskService


def get_task(service: TaskService, principal: Principal, task_id: str) -> dict[str, Any]:
    """GetTask: ``{"task": {...}}``."""
    return {"task": task_object(service.visible_task(principal, task_id))}


def list_tasks(
    service: TaskService, principal: Principal, params: ListTasksParams, *, total: bool = True
) -> dict[str, Any]:
    """ListTasks: ``{tasks, next, totalCount}`` (without ``totalCount`` when ``total`` is
    False: the dashboard's lists show none); raises invalid params for a bad cursor."""
    try:
        page = service.store.list_visible(
            principal.user_id,
            principal.org_id,
            TaskFilter(owner_id=params.owner_id, agent_name=params.agent_name, state=params.state),
            limit=params.limit,
            cursor=params.cursor,
            count_total=total,
        )
    except InvalidCursor as exc:
        raise errors.invalid_params(str(exc)) from None
    answer: dict[str, Any] = {"tasks": [task_object(r) for r in page.tasks], "next": page.next}
    if page.total_count is not None:
        answer["totalCount"] = page.total_count
    return answer


def read_token_for(
    service: TaskService, principal: Principal, task_id: str, role: str
) -> dict[str, Any]:
    """A fresh read token (T4) for the task channel; raises invalid params for an unknown
    role and TASK_NOT_FOUND for a task the caller may not see."""
    if role not in TASK_READ_TOKEN_ROLES:
        raise errors.invalid_params(f"'role' must be one of {', '.join(TASK_READ_TOKEN_ROLES)}.")
    record = service.visible_task(principal, task_id)
    owner = role == TASK_READ_TOKEN_ROLE_CONSUMER and record.owner_id == principal.user_id
    token, ttl = service.read_token(record, owner=owner)
    return TaskReadTokenResponse(token, status_channel(record), ttl).to_wire()


def anon_read_token_for(service: TaskService, task_id: str, fingerprint: str) -> dict[str, Any]:
    """A read token for an anonymous viewer (protocol.md §5.5): only for a free task of a
    public agent whose submitter sent the same ``fingerprint``. Anything else, a missing
    task included, is 403 ANON_TASK_ACCESS_DENIED."""
    record = service.store.get(task_id)
    agent = None if record is None else service.ctx.registry.get(record.agent_name)
    if (
        record is None
        or agent is None
        or record.billing_mode != BILLING_MODE_FREE
        or agent.listing != LISTING_PUBLIC
        or record.fingerprint is None
        or not hmac.compare_digest(record.fingerprint.encode(), fingerprint.encode())
    ):
        raise BackendError(
            403,
            errors.ANON_TASK_ACCESS_DENIED,
            "Anonymous access denied: only the submitter of a free task of a public agent may "
            "watch it without signing in. Sign in and use task-read-token instead.",
        )
    token, ttl = service.read_token(record)
    return TaskReadTokenResponse(token, status_channel(record), ttl).to_wire()
