"""Params of the task RPC methods (protocol.md §4.1), validated without I/O.

Shapes the wire module defines (SendMessage, ``{taskId}``) are parsed with it; its
ProtocolError becomes an invalid-params BackendError naming the field to fix, so a
malformed call never reaches the service (and never becomes a 500). Card rules (declared
inputs, task kinds) are checked here too, against the agent's validated card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from blocks_devnet.backend.tasks.errors import invalid_params
from blocks_devnet.backend.tasks.store import ACTIVE_STATES
from blocks_network.protocol.agent_card import AgentCard
from blocks_network.protocol.artifacts import InlineArtifactRef
from blocks_network.protocol.channels import is_valid_agent_name
from blocks_network.protocol.constants import TASK_KIND_REQUEST, TERMINAL_STATES
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.task_api import SendMessageParams, TaskIdParams

MAX_PARTS: Final = 100
MAX_STRING: Final = 256
MAX_PUBLIC_KEY_LENGTH: Final = 8192
DEFAULT_LIST_LIMIT: Final = 20
MAX_LIST_LIMIT: Final = 100
ALL_STATES: Final = (*ACTIVE_STATES, *sorted(TERMINAL_STATES))


@dataclass(frozen=True)
class SendMessage:
    """Validated SendMessage params plus the local network's extra ``fingerprint``
    (an anonymous viewer proves it submitted the task with it, protocol.md §5.5)."""

    params: SendMessageParams
    fingerprint: str | None = None

    @property
    def task_kind(self) -> str:
        return self.params.task_kind or TASK_KIND_REQUEST


def _optional_str(params: Mapping[str, Any], name: str, max_length: int = MAX_STRING) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise invalid_params(f"'{name}' must be a string of at most {max_length} characters.")
    return value or None


def parse_send_message(params: Mapping[str, Any]) -> SendMessage:
    """Validate SendMessage params; raises an invalid-params BackendError."""
    try:
        parsed = SendMessageParams.from_wire(params)
    except ProtocolError as exc:
        raise invalid_params(f"Invalid SendMessage params: {exc}") from None
    if not is_valid_agent_name(parsed.agent_name):
        raise invalid_params(
            f"'agentName' {parsed.agent_name[:64]!r} is not a valid agent name "
            "(letters, digits and '_' only)."
        )
    if len(parsed.request_parts) > MAX_PARTS:
        raise invalid_params(f"'requestParts' has more than {MAX_PARTS} parts.")
    for name, value in (
        ("ownerId", parsed.owner_id),
        ("idempotencyKey", parsed.idempotency_key),
        ("uploadSessionId", parsed.upload_session_id),
    ):
        if value is not None and len(value) > MAX_STRING:
            raise invalid_params(f"'{name}' is longer than {MAX_STRING} characters.")
    key = parsed.consumer_public_key
    if key is not None and len(key) > MAX_PUBLIC_KEY_LENGTH:
        raise invalid_params(
            f"'extensions.blocks.consumerPublicKey' is longer than {MAX_PUBLIC_KEY_LENGTH} characters."
        )
    return SendMessage(params=parsed, fingerprint=_optional_str(params, "fingerprint"))


def check_against_card(card: AgentCard, request: SendMessage) -> None:
    """Apply the agent card's rules: accepted task kinds, declared input ids (when the
    card declares inputs), required inputs, and inline sizes; raises invalid-params."""
    kind = request.task_kind
    if kind not in card.task_kinds:
        raise invalid_params(
            f"Agent {card.agent_name!r} does not take {kind} tasks "
            f"(its card lists taskKinds: {', '.join(card.task_kinds)})."
        )
    if not card.inputs:
        return
    declared = {i.id: i for i in card.inputs}
    given: set[str] = set()
    for part in request.params.request_parts:
        if part.part_id is None:
            continue
        spec = declared.get(part.part_id)
        if spec is None:
            raise invalid_params(
                f"Part id {part.part_id!r} is not an input of agent {card.agent_name!r}; "
                f"declared inputs: {', '.join(sorted(declared))}.",
                details={"partId": part.part_id, "declared": sorted(declared)},
            )
        given.add(part.part_id)
        ref = part.artifact_ref
        if (
            spec.max_size_bytes is not None
            and isinstance(ref, InlineArtifactRef)
            and ref.size > spec.max_size_bytes
        ):
            raise invalid_params(
                f"Part {part.part_id!r} is {ref.size} bytes; input {spec.id!r} accepts at "
                f"most {spec.max_size_bytes}."
            )
    missing = sorted(i.id for i in card.inputs if i.required and i.id not in given)
    if missing:
        raise invalid_params(
            f"Agent {card.agent_name!r} requires input(s) {', '.join(missing)}: add a part "
            "with each of these partIds.",
            details={"missing": missing},
        )


def parse_task_id(params: Mapping[str, Any], method: str) -> str:
    """The ``taskId`` of GetTask and the control methods; raises invalid-params."""
    try:
        task_id = TaskIdParams.from_wire(params, method).task_id
    except ProtocolError as exc:
        raise invalid_params(str(exc)) from None
    if len(task_id) > MAX_STRING:
        raise invalid_params(f"'taskId' is longer than {MAX_STRING} characters.")
    return task_id


def parse_reason(params: Mapping[str, Any]) -> str | None:
    return _optional_str(params, "reason", max_length=1024)


@dataclass(frozen=True)
class ListTasksParams:
    owner_id: str | None = None
    agent_name: str | None = None
    state: str | None = None
    limit: int = DEFAULT_LIST_LIMIT
    cursor: str | None = None


def parse_list_tasks(params: Mapping[str, Any]) -> ListTasksParams:
    """Validate ListTasks ``{ownerId?, agentName?, state?, limit?, cursor?}``."""
    state = _optional_str(params, "state")
    if state is not None and state not in ALL_STATES:
        raise invalid_params(f"'state' must be one of {', '.join(ALL_STATES)}.")
    limit = params.get("limit")
    if limit is None:
        limit = DEFAULT_LIST_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid_params(f"'limit' must be an integer from 1 to {MAX_LIST_LIMIT}.")
    return ListTasksParams(
        owner_id=_optional_str(params, "ownerId"),
        agent_name=_optional_str(params, "agentName"),
        state=state,
        limit=limit,
        cursor=_optional_str(params, "cursor", max_length=1024),
    )
