"""The per-instance credential cache (protocol §10.6): what it takes to end a task later.

Set at StartTask, removed at the terminal; it survives a pipe handler's voluntary return so
``publish_terminal`` and later control messages can still end the task; lost on restart.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from blocks_network.agent.realtime_http import PendingPublish, PublishOutcome
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.constants import Environment

if TYPE_CHECKING:
    from blocks_network.agent.outbox import Backlog

__all__ = ["CredentialCache", "TaskCredentials"]


@dataclass
class TaskCredentials:
    """``{owner_id, org_id, write_token, agent_name, environment, stream_ids}`` of one task."""

    task_id: str
    owner_id: str
    org_id: str
    write_token: str | None
    agent_name: str
    environment: Environment | None
    protocol_version: str | None = None
    stream_ids: set[str] = field(default_factory=set)
    #: The task's publishes go out in order: those not waited for yet, oldest first (more
    #: than one when pipelined on one connection).
    pending: list[PendingPublish] = field(default_factory=list, repr=False, compare=False)
    #: Set while the handler's results go out: a pipelined publish that does not wait is
    #: written with the next one (the terminal), so they reach the network together.
    gathering: bool = field(default=False, repr=False, compare=False)
    publish_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: The answer to the last publish the network took (its timetoken, for history checks).
    last_answer: PublishOutcome | None = field(default=None, repr=False, compare=False)
    #: Events the network has not taken yet, retried by the outbox (None: nothing waits).
    backlog: Backlog | None = field(default=None, repr=False, compare=False)
    #: Until when (monotonic) waiting events are retried: the task's own deadline.
    deliver_by: float = field(default=math.inf, repr=False, compare=False)
    #: Events given up on (the deadline passed first).
    events_lost: int = field(default=0, repr=False, compare=False)

    @property
    def channel(self) -> str:
        """The task channel ``u.{orgId}.{taskId}``."""
        return task_channel(self.org_id, self.task_id)


class CredentialCache:
    """Thread-safe map task id → :class:`TaskCredentials`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, TaskCredentials] = {}

    def put(self, creds: TaskCredentials) -> None:
        with self._lock:
            self._items[creds.task_id] = creds

    def get(self, task_id: str) -> TaskCredentials | None:
        with self._lock:
            return self._items.get(task_id)

    def pop(self, task_id: str) -> TaskCredentials | None:
        with self._lock:
            return self._items.pop(task_id, None)

    def holding_stream(self, stream_id: str) -> list[TaskCredentials]:
        """Every cached task that registered ``stream_id``."""
        with self._lock:
            return [c for c in self._items.values() if stream_id in c.stream_ids]

    def task_ids(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
