"""The agent's streams: ``ctx.create_stream(...)`` and their end with the task (protocol §8.1).

One :class:`AgentStreams` per agent instance. ``create`` resolves the options against the card,
runs the setup handshake with the task's write token, opens the client (writer token T7a),
waits ``subscribe_grace_ms`` for consumers to subscribe (outbound and bidirectional streams)
and starts ``on_activate(stream)`` on a daemon thread; if that raises, the stream is failed
with ``stream_crashed``. ``finish_task`` ends a task's dedicated streams (``stream_end``) and
lets go of its shared ones; the runtime calls it before the task's artifacts and terminal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from blocks_network.protocol.agent_card import CardStream
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.channels import stream_channel, validate_stream_id
from blocks_network.protocol.constants import (
    PROTOCOL_VERSION,
    STREAM_REORDER_WINDOW_MS,
    STREAM_SUBSCRIBE_GRACE_MS,
    StreamSetupPhase,
    TaskKind,
)
from blocks_network.protocol.errors import STREAM_CRASHED, ProtocolError
from blocks_network.protocol.stream_setup import StreamSetup
from blocks_network.transport.pubnub_factory import RealtimeEndpoint

from .client import StreamClient, StreamInfo
from .errors import StreamClosedError, StreamOptionsError
from .link import StreamLink
from .opening import open_stream_client
from .options import ResolvedStream, duration_minutes, resolve_stream
from .registry import StreamEntry, StreamRegistry
from .settings import WriterSettings
from .setup import request_stream_setup

__all__ = ["ActivateCallback", "AgentStreams", "StreamTask"]

logger = logging.getLogger(__name__)

ActivateCallback = Callable[[StreamClient], Any]

# How create() got its stream: newly opened, a shared one joined, or this task's own again.
_OPENED, _ATTACHED, _SAME = "opened", "attached", "same"


@dataclass(frozen=True)
class StreamTask:
    """What stream creation needs to know about the running task."""

    task_id: str
    org_id: str
    task_kind: TaskKind
    has_stream: bool
    write_token: str | None
    keyset: Keyset
    duration: float | None = None
    protocol_version: str | None = None
    cancel_event: threading.Event | None = None


class AgentStreams:
    """Creates, tracks and ends one agent instance's streams. Thread-safe.

    ``fail_stream(stream_id, reason)`` is the instance's own (it publishes ``terminal failed``
    for the holders); ``on_change()`` is called when the set of open streams changes.
    """

    def __init__(
        self,
        *,
        endpoint: RealtimeEndpoint,
        agent_name: str,
        instance_id: str,
        card_streams: Mapping[str, CardStream] | None = None,
        max_running_time_sec: int | None = None,
        fail_stream: Callable[[str, str], Any] | None = None,
        on_change: Callable[[], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._agent_name = agent_name
        self._instance_id = instance_id
        self._card_streams: Mapping[str, CardStream] = card_streams or {}
        self._max_running = max_running_time_sec
        self._fail_stream = fail_stream
        self._on_change = on_change
        self._env = env
        self.registry = StreamRegistry()
        self._lock = threading.Lock()
        # Shared streams are created under this lock so two tasks never both set one up.
        self._shared_lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._links: dict[Keyset, StreamLink] = {}
        self._closed = False

    # --- queries ------------------------------------------------------------------------

    @property
    def active_count(self) -> int:
        """Streams this instance reads or writes itself (presence ``activeStreams``)."""
        return self.registry.active_count()

    def task_stream_ids(self, task_id: str) -> list[str]:
        return self.registry.task_stream_ids(task_id)

    def _link(self, keyset: Keyset) -> StreamLink:
        with self._lock:
            link = self._links.get(keyset)
            if link is None:
                link = StreamLink(self._endpoint, keyset, self._agent_name)
                self._links[keyset] = link
            return link

    def _next_stream_id(self, task_id: str) -> str:
        with self._lock:
            n = self._counters.get(task_id, 0) + 1
            self._counters[task_id] = n
        return f"{task_id}-{n}"

    # --- create -------------------------------------------------------------------------

    def create(
        self,
        task: StreamTask,
        *,
        direction: str | None = None,
        format: str | None = None,
        declared_stream: str | None = None,
        affinity: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        external: bool = False,
        on_activate: ActivateCallback | None = None,
        bundle_size_bytes: int | None = None,
        max_latency_ms: int | None = None,
        subscribe_grace_ms: int | None = None,
        reorder_window_ms: float | None = None,
    ) -> StreamClient:
        """Open a stream for ``task`` (see the module docstring); returns its client.

        Blocks for the handshake and the subscribe grace. Raises StreamOptionsError (bad or
        conflicting options, streaming not negotiated), StreamSetupError (refused by the
        network) and StreamClosedError after :meth:`close`.
        """
        if self._closed:
            raise StreamClosedError("the agent instance is stopping; no new streams")
        if not task.has_stream:
            raise StreamOptionsError(
                f"Streaming was not negotiated for task {task.task_id}: the consumer must "
                "send the task with streaming enabled (stream=True)"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise StreamOptionsError(f"metadata must be a dict, got {type(metadata).__name__}")
        if on_activate is not None and not callable(on_activate):
            raise StreamOptionsError("on_activate must be callable")
        grace_ms = STREAM_SUBSCRIBE_GRACE_MS if subscribe_grace_ms is None else subscribe_grace_ms
        if grace_ms < 0:
            raise StreamOptionsError(f"subscribe_grace_ms must be ≥ 0, got {grace_ms}")
        resolved = resolve_stream(
            self._card_streams,
            task_kind=task.task_kind,
            declared_stream=declared_stream,
            direction=direction,
            format=format,
            affinity=affinity,
            external=external,
        )
        settings = WriterSettings.resolve(
            bundle_size_bytes=bundle_size_bytes, max_latency_ms=max_latency_ms, env=self._env
        )
        window = STREAM_REORDER_WINDOW_MS if reorder_window_ms is None else reorder_window_ms
        if resolved.affinity == "shared":
            with self._shared_lock:
                client, how = self._acquire_shared(task, resolved, metadata, settings, window)
        else:
            stream_id = self._stream_id(self._next_stream_id(task.task_id))
            client = self._open(task, stream_id, resolved, metadata, settings, window)
            how = _OPENED
        if how == _SAME:
            return client
        self._notify_change()
        if resolved.direction != "inbound" and grace_ms:
            # Let the consumer subscribe before the first frame (the replay buffer is a backup).
            waiter = task.cancel_event or threading.Event()
            waiter.wait(grace_ms / 1000)
        if on_activate is not None and how == _OPENED:
            # A task joining a shared stream gets the running stream, not a second producer.
            self._activate(client, on_activate)
        return client

    def _stream_id(self, stream_id: str) -> str:
        try:
            return validate_stream_id(stream_id)
        except ProtocolError as exc:
            raise StreamOptionsError(f"cannot open the stream: {exc}") from exc

    def _setup(
        self,
        task: StreamTask,
        stream_id: str,
        resolved: ResolvedStream,
        metadata: Mapping[str, Any] | None,
        phase: StreamSetupPhase,
    ) -> str | None:
        setup = StreamSetup(
            task_id=task.task_id,
            org_id=task.org_id,
            agent_name=self._agent_name,
            stream_id=stream_id,
            channel=stream_channel(self._agent_name, stream_id),
            direction=resolved.direction,
            task_kind=task.task_kind,
            duration_minutes=duration_minutes(task.task_kind, task.duration, self._max_running),
            format=resolved.format,
            affinity=resolved.affinity,
            declared_stream=resolved.declared_stream,
            phase=phase,
            metadata=dict(metadata or {}),
            protocol_version=task.protocol_version or PROTOCOL_VERSION,
        )
        ok = request_stream_setup(
            self._link(task.keyset).publisher(),
            setup,
            write_token=task.write_token,
            user_id=self._instance_id,
        )
        return ok.token

    def _open(
        self,
        task: StreamTask,
        stream_id: str,
        resolved: ResolvedStream,
        metadata: Mapping[str, Any] | None,
        settings: WriterSettings,
        window: float,
    ) -> StreamClient:
        if resolved.external:
            token = self._setup(task, stream_id, resolved, metadata, "token_request")
            self._setup(task, stream_id, resolved, metadata, "activate")
        else:
            token = self._setup(task, stream_id, resolved, metadata, "embedded")
        if not token:
            raise StreamOptionsError(f"stream setup for {stream_id} returned no writer token")
        info = StreamInfo(
            task_id=task.task_id,
            stream_id=stream_id,
            channel=stream_channel(self._agent_name, stream_id),
            direction=resolved.direction,
            format=resolved.format,
            affinity=resolved.affinity,
            declared_stream=resolved.declared_stream,
            metadata=metadata,
        )
        if resolved.external:
            # Someone else writes it with the token: this process only hands the token out.
            client = StreamClient(info, token=token)
        else:
            client = open_stream_client(
                info,
                link=self._link(task.keyset),
                token=token,
                reorder_window_ms=window,
                writer_settings=settings,
            )
        self.registry.add(
            StreamEntry(
                stream_id=stream_id,
                client=client,
                direction=resolved.direction,
                format=resolved.format,
                affinity=resolved.affinity,
                external=resolved.external,
                tasks=[task.task_id],
            )
        )
        logger.info(
            "stream %s opened (%s, %s, %s) for task %s",
            stream_id,
            resolved.direction,
            resolved.format,
            resolved.affinity,
            task.task_id,
        )
        return client

    def _acquire_shared(
        self,
        task: StreamTask,
        resolved: ResolvedStream,
        metadata: Mapping[str, Any] | None,
        settings: WriterSettings,
        window: float,
    ) -> tuple[StreamClient, str]:
        stream_id = self._stream_id(resolved.declared_stream)
        entry = self.registry.get(stream_id)
        if entry is None:
            return self._open(task, stream_id, resolved, metadata, settings, window), _OPENED
        entry.check_compatible(
            resolved.direction, resolved.format, resolved.affinity, resolved.external
        )
        if task.task_id in entry.tasks:
            return entry.client, _SAME
        # Another task joins: the network announces the stream on this task's channel too.
        self._setup(task, stream_id, resolved, metadata, "activate")
        self.registry.attach(stream_id, task.task_id)
        logger.info("task %s attached to shared stream %s", task.task_id, stream_id)
        return entry.client, _ATTACHED

    def _activate(self, client: StreamClient, on_activate: ActivateCallback) -> None:
        def run() -> None:
            try:
                on_activate(client)
            except StreamClosedError:
                logger.info("stream %s: on_activate stopped, the stream ended", client.stream_id)
            except Exception:
                logger.exception(
                    "stream %s: on_activate raised; failing the stream", client.stream_id
                )
                self.fail(client.stream_id, STREAM_CRASHED)

        threading.Thread(
            target=run, name=f"blocks-stream-activate-{client.stream_id}", daemon=True
        ).start()

    # --- end ----------------------------------------------------------------------------

    def finish_task(self, task_id: str) -> None:
        """End ``task_id``'s streams: dedicated ones get ``stream_end``; shared ones are closed
        when no other task holds them. Blocks while buffered frames are published."""
        released, _kept = self.registry.detach_task(task_id)
        with self._lock:
            self._counters.pop(task_id, None)
        for entry in released:
            try:
                if entry.affinity == "dedicated":
                    entry.client.end()
                entry.client.close()
            except Exception:
                logger.exception("ending stream %s failed", entry.stream_id)
        if released:
            self._notify_change()

    def abort_stream(self, stream_id: str) -> list[str]:
        """Force-remove a stream, dropping buffered frames; returns the task ids that held it.

        The instance's ``fail_stream`` calls this, then fails those tasks.
        """
        entry = self.registry.remove(stream_id)
        if entry is None:
            return []
        entry.client.abort()
        self._notify_change()
        return list(entry.tasks)

    def fail(self, stream_id: str, reason: str = STREAM_CRASHED) -> None:
        """Fail a stream: the instance's ``fail_stream`` ends its holders ``failed``."""
        if self._fail_stream is not None:
            try:
                self._fail_stream(stream_id, reason)
            except Exception:
                logger.exception("failing the tasks of stream %s failed", stream_id)
        self.abort_stream(stream_id)

    def close(self) -> None:
        """Close every stream (no ``stream_end``); later ``create`` calls fail. Idempotent."""
        self._closed = True
        for entry in self.registry.remove_all():
            try:
                entry.client.close()
            except Exception:
                logger.exception("closing stream %s failed", entry.stream_id)
        with self._lock:
            links = list(self._links.values())
        for link in links:
            link.close()

    def _notify_change(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                logger.exception("stream change callback failed")
