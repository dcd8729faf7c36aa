"""What a handler's :class:`~blocks_network.types.TaskContext` does (protocol §9.3, §9.6, §7).

:class:`ContextServices` implements the ``TaskServices`` interface for the runner's tasks:
throttled ``report_status``, ``publish_artifact`` (inline event or upload),
``download_input_artifact`` and the embedded ``task_client``. ``create_stream`` is the hook
the streams package fills in.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pubnub.exceptions import PubNubException

from blocks_network.agent.artifacts import ArtifactUploader, artifact_bytes, download_input
from blocks_network.agent.credentials import TaskCredentials
from blocks_network.agent.scheduler import Scheduler
from blocks_network.agent.status_throttle import PublishNow, ScheduleFlush
from blocks_network.agent.task_state import ActiveTask
from blocks_network.consumer.artifacts import DownloadedArtifact
from blocks_network.errors import ArtifactError
from blocks_network.protocol.artifacts import ArtifactRef, FileArtifactRef, InlineArtifactRef
from blocks_network.protocol.events import ArtifactEvent, ProgressMessage
from blocks_network.stream.context import StreamTask
from blocks_network.stream.errors import StreamClosedError
from blocks_network.types import TaskContext

if TYPE_CHECKING:
    from blocks_network.agent.task_runner import RunnerConfig, TaskRunner

__all__ = ["ContextServices"]

logger = logging.getLogger(__name__)


class ContextServices:
    """The runner's side of every TaskContext method. Thread-safe."""

    def __init__(
        self,
        runner: TaskRunner,
        config: RunnerConfig,
        *,
        scheduler: Scheduler,
        uploader: ArtifactUploader,
    ) -> None:
        self._runner = runner
        self._cfg = config
        self._scheduler = scheduler
        self._uploader = uploader

    def report_status(self, task_id: str, message: str) -> None:
        task = self._runner.get(task_id)
        if task is None:
            logger.debug("status for task %s after it ended ignored", task_id)
            return
        with task.lock:
            if task.ended:
                return
            decision = task.throttle.offer(message, time.monotonic())
            if isinstance(decision, PublishNow):
                wire = ProgressMessage(
                    task_id, decision.message, task.creds.protocol_version
                ).to_wire()
                self._runner.publish_event(task.creds, wire)
            elif isinstance(decision, ScheduleFlush):
                task.flush_timer = self._scheduler.call_at(decision.at, lambda: self._flush(task))

    def _flush(self, task: ActiveTask) -> None:
        with task.lock:
            if task.ended:
                return
            message = task.throttle.due(time.monotonic())
            if message is not None:
                wire = ProgressMessage(task.task_id, message, task.creds.protocol_version).to_wire()
                self._runner.publish_event(task.creds, wire)

    def _open_creds(self, task_id: str) -> TaskCredentials:
        task = self._runner.get(task_id)
        creds = task.creds if task is not None else self._runner.credentials.get(task_id)
        if creds is None or (task is not None and task.ended):
            raise ArtifactError(f"task {task_id} has ended; it cannot publish artifacts any more")
        return creds

    def publish_artifact(
        self,
        task_id: str,
        data: str | bytes,
        mime_type: str | None,
        file_name: str | None,
        output_id: str | None,
    ) -> ArtifactRef:
        raw = artifact_bytes(data, "artifact data")
        return self.publish_bytes(self._open_creds(task_id), raw, mime_type, file_name, output_id)

    def publish_bytes(
        self,
        creds: TaskCredentials,
        data: bytes,
        mime_type: str | None,
        file_name: str | None,
        output_id: str | None,
    ) -> ArtifactRef:
        """Publish ``data`` for the task of ``creds``: an inline event (sent; the task's next
        publish reads the answer) or an upload (blocking)."""
        if len(data) <= self._cfg.inline_limit:
            ref = InlineArtifactRef.from_bytes(data, mime_type=mime_type, file_name=file_name)
            event = ArtifactEvent(creds.task_id, ref, output_id, creds.protocol_version)
            self._runner.publish_event(creds, event.to_wire(), wait=False)
            return ref
        # The backend publishes the file's artifact event: our earlier events go first.
        self._runner.flush(creds)
        return self._uploader.upload(
            creds.task_id,
            data,
            mime_type=mime_type or "application/octet-stream",
            file_name=file_name or f"{creds.task_id}-artifact",
            output_id=output_id,
        )

    def download_input_artifact(self, task_id: str, part: object) -> DownloadedArtifact:
        task = self._runner.get(task_id)
        if task is None:
            raise ArtifactError(
                f"task {task_id} is not running; download its inputs from the handler"
            )

        def download(ref: FileArtifactRef) -> bytes:
            return self._download(task, ref)

        return download_input(part, download)

    def _download(self, task: ActiveTask, ref: FileArtifactRef) -> bytes:
        with task.lock:
            if task.pubnub is None:
                task.pubnub = self._cfg.task_pubnub(task.creds)
            client = task.pubnub
        if not ref.file_name:
            raise ArtifactError("the input file reference has no fileName; it cannot be downloaded")
        try:
            envelope = (
                client.download_file()
                .channel(ref.channel)
                .file_id(ref.file_id)
                .file_name(ref.file_name)
                .sync()
            )
        except PubNubException as exc:
            raise ArtifactError(f"downloading input file {ref.file_name!r} failed: {exc}") from exc
        data = envelope.result.data
        return bytes(data) if not isinstance(data, bytes) else data

    def create_stream(self, ctx: TaskContext, **kwargs: Any) -> Any:
        """Open a stream for the task (protocol §8.1; see ``blocks_network.stream.context``)."""
        task = self._runner.get(ctx.task_id)
        streams = self._runner.streams
        if task is None or task.ended or streams is None:
            raise StreamClosedError(
                f"task {ctx.task_id} has ended (or this runtime has no streams); open streams "
                "from the handler while the task runs"
            )
        # The backend announces the stream on the task channel: our earlier events go first.
        self._runner.flush(task.creds)
        stream = streams.create(
            StreamTask(
                task_id=task.task_id,
                org_id=task.creds.org_id,
                task_kind=task.start.task_kind,
                has_stream=task.start.has_stream,
                write_token=task.creds.write_token,
                keyset=self._cfg.keyset_for(task.creds.environment),
                duration=task.start.duration,
                protocol_version=task.creds.protocol_version,
                cancel_event=ctx.cancel_event,
            ),
            **kwargs,
        )
        task.creds.stream_ids.add(stream.stream_id)
        return stream

    def task_client(self) -> Any:
        return self._cfg.task_client()
