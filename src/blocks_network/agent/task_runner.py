"""Running tasks: the executor, per-task publishing, terminals (protocol §3.3 to §3.5, §9.3).

For each accepted StartTask the runner caches the task's credentials, counts it active and
queues the handler on the worker pool. The worker publishes ``progress running``, calls
``handler(task, ctx)``, publishes the returned artifacts and then the terminal. Every event
is one HTTP publish with the task's own write token (see :mod:`.realtime_http`), so no
PubNub client is created per task; one is made lazily only if the handler downloads a file.

Thread model: control messages arrive on the control client's thread, handlers run on the
pool (``async def`` handlers instead run on an event loop through :attr:`TaskRunner.dispatch`,
see :mod:`.async_runner`), status flushes and pipe deadlines on the scheduler thread. A task's ``lock`` and its
``ended`` flag make sure nothing of a task is published after its terminal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from blocks_network.agent.artifacts import (
    ArtifactUploader,
    PreparedArtifact,
    prepare_artifacts,
)
from blocks_network.agent.context_services import ContextServices
from blocks_network.agent.credentials import CredentialCache, TaskCredentials
from blocks_network.agent.logging import fields
from blocks_network.agent.outbox import EventOutbox
from blocks_network.agent.realtime_http import PendingPublish, PublishOutcome, RealtimeHttp
from blocks_network.agent.recent_tasks import RecentTasks
from blocks_network.agent.scheduler import Scheduler
from blocks_network.agent.task_state import SHUTDOWN_REASON, ActiveTask, terminal_for
from blocks_network.errors import ArtifactError, ClosedError
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.constants import (
    PROTOCOL_VERSION,
    TASK_STATE_CANCELED,
    TASK_STATE_FAILED,
    TERMINAL_REASON_TERMINATED,
    Environment,
)
from blocks_network.protocol.control import StartTask
from blocks_network.protocol.errors import handler_error_text
from blocks_network.protocol.events import (
    ProgressState,
    SystemEvent,
    TerminalEvent,
    task_event_meta,
)
from blocks_network.stream.context import AgentStreams
from blocks_network.types import Handler, StartTaskMessage, SyncHandler, TaskContext

__all__ = ["RunnerConfig", "TaskRunner"]

logger = logging.getLogger(__name__)

_IDLE_POLL_S = 0.05
#: How long a request task's events are retried when no ``maxRunningTimeSec`` is set.
DEFAULT_DELIVER_WITHIN_S: Final = 3600.0
#: How long :meth:`TaskRunner.flush` waits past the deadline for the outbox to give up.
FLUSH_MARGIN_S: Final = 15.0
#: A pipe's terminal is retried this long past its expiry.
PIPE_TERMINAL_GRACE_S: Final = 60.0


@dataclass(frozen=True)
class RunnerConfig:
    """What the runner needs from the instance (callables are called from any thread)."""

    agent_name: str
    instance_id: str
    handler: Handler | None
    on_error: Callable[[str, BaseException], Any] | None
    inline_limit: int
    keyset_for: Callable[[Environment | None], Keyset]
    environment: Callable[[], Environment | None]
    on_active_changed: Callable[[int, bool], None]
    """``(active_count, task_ended)``: with ``task_ended`` a terminal follows, so the
    presence update is sent before returning when the backend needs it to see the freed
    slot (see :meth:`PresenceReporter.task_ended`)."""
    task_client: Callable[[], Any]
    task_pubnub: Callable[[TaskCredentials], Any]
    #: The instance's ``maxRunningTimeSec``: how long a request task's events are retried.
    max_running_time_sec: int | None = None


class TaskRunner:
    """Accepts, runs and ends tasks. Thread-safe."""

    def __init__(
        self,
        config: RunnerConfig,
        *,
        realtime: RealtimeHttp,
        submit: Callable[[Callable[[], None]], None],
        scheduler: Scheduler,
        uploader: ArtifactUploader,
        credentials: CredentialCache | None = None,
    ) -> None:
        self._cfg = config
        self._realtime = realtime
        self._submit = submit
        self._scheduler = scheduler
        self._uploader = uploader
        self.credentials = credentials or CredentialCache()
        self._lock = threading.Condition()
        self._active: dict[str, ActiveTask] = {}
        #: Tasks whose slot is free but whose terminal is still being published.
        self._finishing: set[str] = set()
        #: Tasks accepted recently: a StartTask for one of them is a duplicate.
        self._accepted = RecentTasks()
        self._outbox = EventOutbox(
            self._send_once, self._find_stored, on_task_done=self._outbox_task_done
        )
        self.services = ContextServices(self, config, scheduler=scheduler, uploader=uploader)
        #: The instance's streams (set by the instance; None: create_stream is unavailable).
        self.streams: AgentStreams | None = None
        #: Where an accepted task goes instead of the worker pool (async handlers; set by the
        #: instance). Raises ClosedError when it takes no more tasks.
        self.dispatch: Callable[[ActiveTask], None] | None = None

    # --- queries ---------------------------------------------------------------------------

    @property
    def active_count(self) -> int:
        """Tasks whose handlers run here (what capacity is checked against)."""
        with self._lock:
            return len(self._active)

    @property
    def announced_count(self) -> int:
        """The presence state's ``activeTasks``: the running tasks plus those whose events (a
        terminal among them) still wait in the outbox. The network has not seen them end, and
        a state that left them out would make it fail them as lost after a restart; they hold
        no handler slot, so they do not count against capacity (docs/agent-runtime.md)."""
        with self._lock:
            ids = set(self._active)
        return len(ids | self._outbox.task_ids())

    def _outbox_task_done(self) -> None:
        # The network took (or we dropped) a waiting task's last event: announce the count.
        self._cfg.on_active_changed(self.announced_count, False)

    def is_in_flight(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._active

    def already_accepted(self, task_id: str) -> bool:
        """Whether this instance ran or runs ``task_id`` (within the last hour or so)."""
        return task_id in self._accepted

    def in_flight(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no handler runs and the network took every ending task's terminal
        (True), or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active or self._finishing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, _IDLE_POLL_S * 20))
        return self._outbox.wait_empty(deadline - time.monotonic())

    # --- publishing ------------------------------------------------------------------------

    def publish_event(
        self, creds: TaskCredentials, wire: dict[str, Any], *, wait: bool = True
    ) -> bool:
        """Publish a task event on ``creds``' channel with its write token.

        A task's events go out in order: each waits until the server took the previous one,
        or, when the previous one is still unanswered (``wait=False``), is pipelined behind
        it on its connection (if the realtime client pipelines; see :mod:`.realtime_http`).
        ``wait=False`` returns once the request is sent (True), so the caller works on while
        the server answers; the next publish of the task, or :meth:`settle`, reads it. A
        publish the network does not take is handed to the outbox, which retries it (and
        queues the task's later events behind it) until the task's deadline; False then.
        """
        version = creds.protocol_version or PROTOCOL_VERSION
        wire.setdefault("protocolVersion", version)
        with creds.publish_lock:
            pipelined = self._pipeline_publish(creds, wire, defer=creds.gathering and not wait)
            if pipelined is None:
                if not self._settle_locked(creds):
                    self._outbox.append(creds, wire)
                    return False
                pipelined = self._start_publish(creds, wire)
            creds.pending.append(pipelined)
            return self._settle_locked(creds) if wait else True

    def _publish_args(self, creds: TaskCredentials) -> dict[str, Any]:
        version = creds.protocol_version or PROTOCOL_VERSION
        return {
            "keyset": self._cfg.keyset_for(creds.environment),
            "channel": creds.channel,
            "token": creds.write_token,
            "meta": task_event_meta(self._cfg.agent_name, creds.task_id, version),
        }

    def _start_publish(self, creds: TaskCredentials, wire: dict[str, Any]) -> PendingPublish:
        return self._realtime.start_publish(message=wire, **self._publish_args(creds))

    def _pipeline_publish(
        self, creds: TaskCredentials, wire: dict[str, Any], *, defer: bool
    ) -> PendingPublish | None:
        """(``publish_lock`` held) ``wire`` sent behind the task's unanswered publish, or
        None (nothing sent): no publish is open, events wait in the outbox, or the
        connection cannot take it."""
        if not creds.pending or creds.backlog is not None:
            return None
        return self._realtime.pipeline_publish(
            creds.pending[-1], message=wire, defer=defer, **self._publish_args(creds)
        )

    def _settle_locked(self, creds: TaskCredentials) -> bool:
        """(``publish_lock`` held) Read the open publishes' answers, in order; True when
        nothing of the task waits for the network."""
        previous, creds.pending = creds.pending, []
        for publish in previous:
            outcome = publish.outcome()
            if outcome.status == "accepted":
                creds.last_answer = outcome
            elif outcome.status != "refused":
                logger.debug("publish for task %s: %s", creds.task_id, outcome)
                uncertain = outcome.status == "unknown"
                self._outbox.hand_over(creds, publish.message, uncertain=uncertain)
        return creds.backlog is None

    def _send_once(self, creds: TaskCredentials, wire: dict[str, Any]) -> PublishOutcome:
        return self._start_publish(creds, wire).outcome()

    def _find_stored(
        self, creds: TaskCredentials, wire: dict[str, Any], after: int | None
    ) -> int | None:
        return self._realtime.find_in_history(
            self._cfg.keyset_for(creds.environment),
            creds.channel,
            wire,
            token=creds.write_token,
            after=after,
        )

    def settle(self, creds: TaskCredentials) -> None:
        """Wait until the server answered the task's last publish (nothing if none is open)."""
        with creds.publish_lock:
            self._settle_locked(creds)

    def flush(self, creds: TaskCredentials) -> bool:
        """Wait until the network took every event of the task published so far (or its
        deadline passed: False). Before an upload or a stream, which the backend announces
        on the task channel itself."""
        self.settle(creds)
        # Past the deadline by one retry: the outbox gives up by then.
        timeout = creds.deliver_by - time.monotonic() + FLUSH_MARGIN_S
        return self._outbox.wait_flushed(creds, timeout) and not creds.events_lost

    @property
    def waiting_events(self) -> int:
        """How many tasks have events waiting for the network."""
        return self._outbox.waiting_tasks

    def close(self) -> int:
        """Stop retrying waiting events; returns how many were lost (logged)."""
        return self._outbox.close()

    def reject(self, start: StartTask, error: str, *, protocol_version: str | None = None) -> None:
        """End a StartTask that will not run with ``terminal failed error``."""
        creds = self._credentials_for(start)
        version = protocol_version or start.protocol_version or PROTOCOL_VERSION
        creds.protocol_version = version
        event = TerminalEvent(
            start.task_id, TASK_STATE_FAILED, error=error, protocol_version=version
        )
        logger.warning(
            "task %s refused: %s",
            start.task_id,
            error,
            extra=fields(taskId=start.task_id, error=error),
        )
        self.publish_event(creds, event.to_wire())

    # --- starting --------------------------------------------------------------------------

    def _credentials_for(self, start: StartTask) -> TaskCredentials:
        return TaskCredentials(
            task_id=start.task_id,
            owner_id=start.resolved_owner_id,
            org_id=start.resolved_org_id,
            write_token=start.write_token,
            agent_name=start.agent_name or self._cfg.agent_name,
            environment=self._cfg.environment(),
            protocol_version=start.protocol_version,
            deliver_by=self._deliver_by(start),
        )

    def _deliver_by(self, start: StartTask) -> float:
        """The task's deadline (monotonic): a pipe's expiry plus a grace for its terminal,
        else ``maxRunningTimeSec`` (1 h when unset) from now. The network's safety net
        ends the task then anyway."""
        now = time.monotonic()
        if start.task_kind == "pipe" and start.duration_expires_at_ms is not None:
            left = start.duration_expires_at_ms / 1000.0 - time.time()
            return now + max(left, 0.0) + PIPE_TERMINAL_GRACE_S
        return now + (self._cfg.max_running_time_sec or DEFAULT_DELIVER_WITHIN_S)

    def start(self, start: StartTask, raw_parts: object = None) -> None:
        """Accept a validated StartTask: cache its credentials and queue its handler.

        ``raw_parts`` is the message's ``requestParts`` as received (handed to the handler
        unchanged). Raises ClosedError if the pool no longer takes work (the task is then
        ended ``canceled``).
        """
        creds = self._credentials_for(start)
        message = StartTaskMessage.from_start_task(start, raw_parts=raw_parts)
        ctx = TaskContext(message, self.services)
        task = ActiveTask(start, creds, ctx)
        self.credentials.put(creds)
        self._accepted.add(start.task_id)
        with self._lock:
            self._active[start.task_id] = task
            count = len(self._active)
        self._cfg.on_active_changed(count, False)
        if ctx.task.is_pipe and start.duration_expires_at_ms is not None:
            delay = start.duration_expires_at_ms / 1000.0 - time.time()
            task.deadline_timer = self._scheduler.call_later(
                delay, lambda: self.expire(start.task_id)
            )
        logger.info(
            "task %s started",
            start.task_id,
            extra=fields(taskId=start.task_id, kind=start.task_kind),
        )
        try:
            if self.dispatch is not None:
                self.dispatch(task)
            else:
                self._submit(lambda: self._run(task))
        except ClosedError:
            self._finish(
                task, TerminalEvent(start.task_id, TASK_STATE_CANCELED, reason=SHUTDOWN_REASON)
            )
            raise

    # --- the worker ------------------------------------------------------------------------

    def _run(self, task: ActiveTask) -> None:
        if task.ended:
            return
        try:
            self.begin(task)
            handler = self._cfg.handler
            try:
                if handler is None:
                    raise RuntimeError("no handler is configured for this agent")
                result = cast(SyncHandler, handler)(task.ctx.task, task.ctx)
            except Exception as exc:
                self.handler_failed(task, exc)
                return
            self.complete(task, result)
        finally:
            self.after_run(task)

    # The steps of a task around its handler; the async runner calls them too
    # (see :mod:`.async_runner`), so both handler kinds end tasks the same way.

    def begin(self, task: ActiveTask) -> None:
        """Publish ``progress running``; the handler starts while the server takes it (the
        next publish waits for it)."""
        self.publish_event(task.creds, ProgressState(task.task_id).to_wire(), wait=False)

    def handler_failed(self, task: ActiveTask, exc: BaseException) -> None:
        """End the task ``failed`` with ``"TypeName: message"`` of the handler's exception."""
        self._fail(task, exc, handler_error_text(exc))

    def after_run(self, task: ActiveTask) -> None:
        """Send what was gathered for the task, if its terminal did not."""
        task.creds.gathering = False
        self.settle(task.creds)

    def complete(self, task: ActiveTask, result: object) -> None:
        """Publish the handler's returned artifacts and the terminal its flags call for."""
        try:
            artifacts = prepare_artifacts(result)
        except ArtifactError as exc:
            self._fail(task, exc)  # our own words on the result's shape: no class name
            return
        # From here on nothing waits on the handler: the artifacts ready now go out in one
        # write with the terminal (see publish_event); after_run's settle sends any left.
        task.creds.gathering = True
        if task.is_pipe and not task.interrupted():
            # A pipe that returns on its own stays open: no terminal, credentials stay cached.
            self._publish_artifacts(task, artifacts)
            self._release(task)
            if task.interrupted():
                # A cancel, expiry or terminate that arrived while the artifacts went out
                # only set the event: end the task now from the cached credentials.
                self._publish_cached_terminal(task.task_id, task.terminal())
                return
            logger.info("pipe task %s handler returned; task stays open", task.task_id)
            return
        # Streams end (stream_end) before the artifacts and the terminal (§3.3 step 6).
        self._end_streams(task.task_id)
        try:
            self._publish_artifacts(task, artifacts)
        except ArtifactError as exc:
            self._fail(task, exc)
            return
        self._finish(task, task.terminal())

    def _publish_artifacts(self, task: ActiveTask, artifacts: list[PreparedArtifact]) -> None:
        for artifact in artifacts:
            if task.ended:
                return
            self.services.publish_bytes(
                task.creds,
                artifact.data,
                artifact.mime_type,
                artifact.file_name,
                artifact.output_id,
            )

    def _fail(self, task: ActiveTask, exc: BaseException, error: str | None = None) -> None:
        error = error or str(exc)
        logger.error(
            "task %s failed: %s",
            task.task_id,
            error,
            exc_info=exc,
            extra=fields(taskId=task.task_id),
        )
        event = TerminalEvent(
            task.task_id,
            TASK_STATE_FAILED,
            error=error,
            protocol_version=task.creds.protocol_version,
        )
        if self._finish(task, event) and self._cfg.on_error is not None:
            try:
                self._cfg.on_error(task.task_id, exc)
            except Exception:
                logger.exception("on_error callback failed for task %s", task.task_id)

    # --- ending ----------------------------------------------------------------------------

    def _end_streams(self, task_id: str) -> None:
        if self.streams is not None:
            try:
                self.streams.finish_task(task_id)
            except Exception:
                logger.exception("ending the streams of task %s failed", task_id)

    def _release(self, task: ActiveTask, *, announce_now: bool = False) -> None:
        with self._lock:
            if self._active.get(task.task_id) is not task:
                return
            del self._active[task.task_id]
            count = len(self._active)
            self._lock.notify_all()
        self._cfg.on_active_changed(count, announce_now)
        if task.pubnub is not None:
            client, task.pubnub = task.pubnub, None
            try:
                client.stop()
            except Exception:
                logger.debug("stopping the task's client failed", exc_info=True)

    def _finish(self, task: ActiveTask, event: TerminalEvent) -> bool:
        """Publish ``event`` as the task's terminal unless it already ended; True if published."""
        with task.lock:
            if not task.mark_ended():
                return False
        self._end_streams(task.task_id)
        self.credentials.pop(task.task_id)
        with self._lock:
            self._finishing.add(task.task_id)
        try:
            # Announce the freed slot (before the terminal when the backend could count us
            # full): on the terminal it sends the next task at once unless it counts us full.
            self._release(task, announce_now=True)
            delivered = self.publish_event(task.creds, event.to_wire())
        finally:
            with self._lock:
                self._finishing.discard(task.task_id)
                self._lock.notify_all()
        logger.info(
            "task %s ended %s%s",
            task.task_id,
            event.state,
            "" if delivered else " (its terminal waits for the network)",
            extra=fields(taskId=task.task_id, state=event.state),
        )
        return True

    def _publish_cached_terminal(self, task_id: str, event: TerminalEvent) -> bool:
        creds = self.credentials.pop(task_id)
        if creds is None:
            return False
        self._end_streams(task_id)
        self.publish_event(creds, event.to_wire())
        logger.info("task %s ended %s", task_id, event.state, extra=fields(taskId=task_id))
        return True

    def publish_terminal(self, task_id: str, event: dict[str, Any]) -> bool:
        """End a task with ``{...event, type: terminal, taskId}`` (handle API, §3.5).

        Works for an in-flight task and for a pipe whose handler returned (cached credentials).
        Returns False when nothing is known about the task.
        """
        wire = dict(event)
        wire["type"] = TerminalEvent.TYPE
        wire["taskId"] = task_id
        with self._lock:
            task = self._active.get(task_id)
        if task is not None:
            with task.lock:
                if not task.mark_ended():
                    return False
            self._release(task)
            creds: TaskCredentials | None = task.creds
            self.credentials.pop(task_id)
        else:
            creds = self.credentials.pop(task_id)
        if creds is None:
            return False
        self._end_streams(task_id)
        self.publish_event(creds, wire)
        return True

    # --- control messages ------------------------------------------------------------------

    def get(self, task_id: str) -> ActiveTask | None:
        """The in-flight task ``task_id`` (None once its handler finished)."""
        with self._lock:
            return self._active.get(task_id)

    def cancel(self, task_id: str) -> None:
        """CancelTask (§3.4.4): set the task's cancel event, or end a returned pipe."""
        task = self.get(task_id)
        if task is not None:
            task.ctx.cancel_event.set()
            task.notify_interrupt()
            logger.info("task %s cancel requested", task_id, extra=fields(taskId=task_id))
            return
        creds = self.credentials.get(task_id)
        if creds is not None:
            self._publish_cached_terminal(
                task_id,
                TerminalEvent(
                    task_id, TASK_STATE_CANCELED, protocol_version=creds.protocol_version
                ),
            )
        else:
            logger.debug("cancel for unknown task %s ignored", task_id)

    def expire(self, task_id: str) -> None:
        """ExpireTask / the pipe deadline (§3.4.5): mark expired, or end a returned pipe."""
        task = self.get(task_id)
        if task is not None:
            task.ctx.mark_expired()
            task.notify_interrupt()
            logger.info("task %s reached its duration", task_id, extra=fields(taskId=task_id))
            return
        creds = self.credentials.get(task_id)
        if creds is not None:
            self._publish_cached_terminal(
                task_id,
                terminal_for(
                    task_id,
                    cancelled=True,
                    expired=True,
                    terminated=False,
                    protocol_version=creds.protocol_version,
                ),
            )

    def terminate(self, task_id: str) -> None:
        """TerminateTask (§3.4.5b): mark terminated, or end a returned pipe."""
        task = self.get(task_id)
        if task is not None:
            task.ctx.mark_terminated()
            task.notify_interrupt()
            logger.info("task %s terminate requested", task_id, extra=fields(taskId=task_id))
            return
        creds = self.credentials.get(task_id)
        if creds is not None:
            self._publish_cached_terminal(
                task_id,
                TerminalEvent(
                    task_id,
                    TASK_STATE_CANCELED,
                    reason=TERMINAL_REASON_TERMINATED,
                    protocol_version=creds.protocol_version,
                ),
            )

    def announce(self, task_id: str, status: str) -> None:
        """Pause/ResumeTask (§3.4.5c): publish ``system status`` for an in-flight task only."""
        task = self.get(task_id)
        if task is None:
            logger.debug("%s for task %s not in flight ignored", status, task_id)
            return
        with task.lock:
            if not task.ended:
                wire = SystemEvent(
                    task_id, status, protocol_version=task.creds.protocol_version
                ).to_wire()
                self.publish_event(task.creds, wire)

    # --- shutdown --------------------------------------------------------------------------

    def cancel_all(self) -> list[str]:
        """Ask every in-flight handler to stop (shutdown); returns their task ids."""
        with self._lock:
            tasks = list(self._active.values())
        for task in tasks:
            task.shutdown = True
            task.ctx.cancel_event.set()
            task.notify_interrupt()
        return [t.task_id for t in tasks]

    def force_end_all(self) -> int:
        """Publish ``canceled`` for every task still open (in flight or cached); returns count.

        Handlers still running afterwards are ignored when they return.
        """
        with self._lock:
            tasks = list(self._active.values())
        ended = 0
        for task in tasks:
            task.shutdown = True
            event = terminal_for(
                task.task_id,
                cancelled=True,
                expired=task.ctx.is_expired,
                terminated=task.ctx.is_terminated,
                protocol_version=task.creds.protocol_version,
                shutdown=True,
            )
            ended += self._finish(task, event)
        for task_id in self.credentials.task_ids():
            creds = self.credentials.get(task_id)
            version = creds.protocol_version if creds else None
            ended += self._publish_cached_terminal(
                task_id,
                TerminalEvent(
                    task_id, TASK_STATE_CANCELED, reason=SHUTDOWN_REASON, protocol_version=version
                ),
            )
        return ended
