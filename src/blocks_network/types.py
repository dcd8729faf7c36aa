"""Types a handler author touches: the task (:class:`StartTaskMessage`), its context
(:class:`TaskContext`) and the instance options (:class:`AgentInstanceOptions`).

``from blocks_network.types import StartTaskMessage, TaskContext`` is what the seed's handler
example imports, so these names live here rather than inside ``blocks_network.agent``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from blocks_network.consumer.artifacts import DownloadedArtifact
from blocks_network.errors import ConfigError
from blocks_network.protocol.channels import is_valid_agent_name
from blocks_network.protocol.constants import (
    DEFAULT_CONCURRENCY,
    DEFAULT_EXPECTED_INSTANCES,
    LISTINGS,
    TASK_KIND_PIPE,
    TaskKind,
)
from blocks_network.protocol.control import StartTask
from blocks_network.protocol.parts import RequestPart

if TYPE_CHECKING:
    from blocks_network.agent.async_context import AsyncTaskContext
    from blocks_network.protocol.artifacts import ArtifactRef

__all__ = [
    "AgentInstanceOptions",
    "AsyncHandler",
    "Handler",
    "StartTaskMessage",
    "SyncHandler",
    "TaskContext",
    "TaskServices",
]

#: ``handler(task, ctx)`` → None or ``{"artifacts": [{data, mimeType?, fileName?, outputId?}]}``.
SyncHandler = Callable[["StartTaskMessage", "TaskContext"], Any]
#: ``async def handler(task, ctx)``: the same result, awaited on the instance's event loop.
AsyncHandler = Callable[["StartTaskMessage", "AsyncTaskContext"], Awaitable[Any]]
#: What ``AgentInstanceOptions.handler`` takes: a sync or an async handler (docs/async.md).
Handler = SyncHandler | AsyncHandler


@dataclass(frozen=True)
class StartTaskMessage:
    """The task a handler runs: a StartTask (protocol §3.1) with snake_case attributes.

    ``request_parts`` are the wire dicts (``{"partId": "text", "text": "hi"}``), ready for
    ``json.dumps``; :attr:`parts` gives the same parts typed. ``owner_id`` and ``org_id`` are
    already resolved (``ownerId`` → ``callerClaims.sub`` → ``"anonymous"``; ``orgId`` → owner).
    Tokens are never present: ``write_token`` is set only for an ``on_start_task`` override,
    which must publish the task's events itself.
    """

    task_id: str
    request_parts: list[dict[str, Any]] = field(default_factory=list)
    agent_name: str | None = None
    owner_id: str = "anonymous"
    org_id: str = "anonymous"
    caller_claims: Mapping[str, Any] | None = None
    request_summary: Mapping[str, Any] | None = None
    task_kind: TaskKind = "request"
    duration: float | None = None
    duration_expires_at_ms: float | None = None
    consumer_public_key: str | None = None
    has_stream: bool = False
    protocol_version: str | None = None
    write_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_start_task(
        cls,
        message: StartTask,
        *,
        raw_parts: object = None,
        keep_write_token: bool = False,
    ) -> StartTaskMessage:
        """Build from the protocol's parsed StartTask (tokens dropped unless asked for).

        ``raw_parts`` is the message's ``requestParts`` as received; when it is a list of
        objects it is used as is (key order kept), else the parsed parts are re-encoded.
        """
        if isinstance(raw_parts, list) and all(isinstance(p, dict) for p in raw_parts):
            parts = [dict(p) for p in raw_parts]
        else:
            parts = [part.to_wire() for part in message.request_parts]
        return cls(
            task_id=message.task_id,
            request_parts=parts,
            agent_name=message.agent_name,
            owner_id=message.resolved_owner_id,
            org_id=message.resolved_org_id,
            caller_claims=message.caller_claims,
            request_summary=message.request_summary,
            task_kind=message.task_kind,
            duration=message.duration,
            duration_expires_at_ms=message.duration_expires_at_ms,
            consumer_public_key=message.consumer_public_key,
            has_stream=message.has_stream,
            protocol_version=message.protocol_version,
            write_token=message.write_token if keep_write_token else None,
        )

    @property
    def parts(self) -> tuple[RequestPart, ...]:
        """The request parts as typed :class:`~blocks_network.protocol.RequestPart` objects."""
        return tuple(RequestPart.from_wire(p) for p in self.request_parts)

    @property
    def is_pipe(self) -> bool:
        """True for a long-lived pipe task (``taskKind: "pipe"``)."""
        return self.task_kind == TASK_KIND_PIPE


class TaskServices(Protocol):
    """What the runtime provides to a :class:`TaskContext` (implemented by the agent runtime)."""

    def report_status(self, task_id: str, message: str) -> None: ...

    def publish_artifact(
        self,
        task_id: str,
        data: str | bytes,
        mime_type: str | None,
        file_name: str | None,
        output_id: str | None,
    ) -> ArtifactRef: ...

    def download_input_artifact(self, task_id: str, part: object) -> DownloadedArtifact: ...

    def create_stream(self, ctx: TaskContext, **kwargs: Any) -> Any: ...

    def task_client(self) -> Any: ...


class TaskContext:
    """What a handler may do while its task runs. Thread-safe; one per task.

    - :meth:`report_status` publishes a ``progress`` message (at most one per second per
      task, latest wins).
    - :meth:`publish_artifact` publishes an artifact now (inline up to
      ``ARTIFACT_INLINE_LIMIT_BYTES``, else uploaded); returned artifacts are published
      after the handler returns.
    - :meth:`download_input_artifact` reads an input part's inline or file artifact.
    - :attr:`cancel_event` is set on CancelTask, ExpireTask, TerminateTask and shutdown;
      long handlers poll :attr:`is_cancelled` (or wait on the event) and return early.
    - :attr:`task_client` is a consumer TaskClient for calling other agents.
    """

    def __init__(self, task: StartTaskMessage, services: TaskServices) -> None:
        self.task = task
        self.task_id = task.task_id
        self.has_stream = task.has_stream
        self.consumer_public_key = task.consumer_public_key
        self.cancel_event = threading.Event()
        self._services = services
        self._expired = False
        self._terminated = False

    @property
    def is_cancelled(self) -> bool:
        """True once the task was cancelled, expired or terminated (the handler should stop)."""
        return self.cancel_event.is_set()

    @property
    def is_expired(self) -> bool:
        """True once a pipe task reached its duration (it will end ``completed``)."""
        return self._expired

    @property
    def is_terminated(self) -> bool:
        """True once TerminateTask arrived (the task will end ``canceled``, ``reason: terminated``)."""
        return self._terminated

    def mark_expired(self) -> None:
        """Runtime use: the task's duration ran out; also sets the cancel event."""
        self._expired = True
        self.cancel_event.set()

    def mark_terminated(self) -> None:
        """Runtime use: TerminateTask arrived; also sets the cancel event."""
        self._terminated = True
        self.cancel_event.set()

    def report_status(self, message: str) -> None:
        """Publish a human status line; never blocks on the network for long, never raises."""
        self._services.report_status(self.task_id, str(message))

    def publish_artifact(
        self,
        data: str | bytes,
        mime_type: str | None = None,
        file_name: str | None = None,
        output_id: str | None = None,
    ) -> ArtifactRef:
        """Publish one artifact now and return its reference.

        ``str`` is sent as UTF-8. Blocks while uploading a large artifact. Raises
        ArtifactError when the artifact is over 25 MiB or the upload fails.
        """
        return self._services.publish_artifact(self.task_id, data, mime_type, file_name, output_id)

    def download_input_artifact(self, part: object) -> DownloadedArtifact:
        """Return a request part's artifact (a wire dict or a RequestPart): ``.data`` (the
        bytes), ``.mime_type``, ``.file_name``.

        Inline artifacts are decoded locally; file artifacts are downloaded with the task's
        credentials. Raises ArtifactError when the part has no artifact or the download fails.
        """
        return self._services.download_input_artifact(self.task_id, part)

    def create_stream(self, **kwargs: Any) -> Any:
        """Open a live stream for this task (protocol §8)."""
        return self._services.create_stream(self, **kwargs)

    @property
    def task_client(self) -> Any:
        """A consumer ``TaskClient`` (created on first use) for agent-to-agent calls."""
        return self._services.task_client()


def _non_negative_int(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"AgentInstanceOptions.{name} must be an integer ≥ 0, got {value!r}")


@dataclass
class AgentInstanceOptions:
    """How to run an agent instance (seed table + protocol §9.1).

    Required: ``agent_name`` (letters, digits, underscores) and ``handler`` (or an
    ``on_start_task`` override). ``card`` is the agent card; when omitted a minimal card is
    built from ``agent_name`` and ``description``. ``concurrency`` 0 means unlimited.
    ``pubnub`` is a pre-configured control client (skips the CDM; the instance still
    connects to ``base_url``). ``token`` is an initial control-channel access token.
    ``user_id``, ``artifact_base_path`` and ``log_channel`` are accepted for compatibility
    and not used by this runtime. ``instance_id`` is for tests (default
    ``AG-{agent_name}-{uuid4}``).
    """

    agent_name: str
    description: str | None = None
    capabilities: list[str] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    handler: Handler | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    expected_instances: int = DEFAULT_EXPECTED_INSTANCES
    pubnub: Any = None
    token: str | None = None
    heartbeat_ms: int | None = None
    on_start_task: Callable[[StartTaskMessage, Any], Any] | None = None
    on_cancel_task: Callable[[str, Any], Any] | None = None
    on_error: Callable[[str, BaseException], Any] | None = None
    card: dict[str, Any] | None = None
    card_ref: str | None = None
    card_summary: str | None = None
    user_id: str | None = None
    artifact_base_path: str | None = None
    log_channel: str | None = None
    instance_id: str | None = None
    max_pending_backlog: int | None = None
    max_running_time_sec: int | None = None
    listing: str | None = None
    base_url: str | None = None
    cdm_url: str | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the first unusable option (no I/O)."""
        if not isinstance(self.agent_name, str) or not is_valid_agent_name(self.agent_name):
            raise ConfigError(
                f"AgentInstanceOptions.agent_name must use only letters, digits and underscores "
                f"(no hyphens or dots), e.g. 'my_agent'; got {self.agent_name!r}"
            )
        if self.handler is None and self.on_start_task is None:
            raise ConfigError(
                "AgentInstanceOptions needs handler=... (a function handler(task, ctx)) or an "
                "on_start_task override"
            )
        for name in ("handler", "on_start_task", "on_cancel_task", "on_error"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ConfigError(f"AgentInstanceOptions.{name} must be callable, got {value!r}")
        _non_negative_int("concurrency", self.concurrency)
        _non_negative_int("expected_instances", self.expected_instances)
        _non_negative_int("max_pending_backlog", self.max_pending_backlog, allow_none=True)
        if self.max_running_time_sec is not None and (
            isinstance(self.max_running_time_sec, bool)
            or not isinstance(self.max_running_time_sec, int)
            or self.max_running_time_sec < 1
        ):
            raise ConfigError(
                "AgentInstanceOptions.max_running_time_sec must be an integer ≥ 1, "
                f"got {self.max_running_time_sec!r}"
            )
        if self.heartbeat_ms is not None and (
            isinstance(self.heartbeat_ms, bool)
            or not isinstance(self.heartbeat_ms, int)
            or self.heartbeat_ms < 1000
        ):
            raise ConfigError(
                f"AgentInstanceOptions.heartbeat_ms must be an integer ≥ 1000, got {self.heartbeat_ms!r}"
            )
        if self.listing is not None and self.listing not in LISTINGS:
            raise ConfigError(
                f"AgentInstanceOptions.listing must be one of {LISTINGS}, got {self.listing!r}"
            )
        if self.card is not None and (not isinstance(self.card, dict) or not self.card):
            raise ConfigError("AgentInstanceOptions.card must be a non-empty dict (the agent card)")
        if not isinstance(self.capabilities, list) or not all(
            isinstance(c, str) for c in self.capabilities
        ):
            raise ConfigError("AgentInstanceOptions.capabilities must be a list of strings")
        if not isinstance(self.tags, list) or not all(isinstance(t, dict) for t in self.tags):
            raise ConfigError(
                "AgentInstanceOptions.tags must be a list of {id, name, description?} dicts"
            )
