"""TaskSession: one task's events, state and artifacts, as a consumer sees them (§4.2-§4.5, §7).

A session follows its task channel with the task's read token (a long-poll of its own on
the client's shared poll loop, see :mod:`.poll_loop`). It is fed either live
(a new task: subscribed from a timetoken taken before SendMessage, so the server's cache
replays every event) or by a history catch-up followed by a subscription from the newest
event seen (``connect`` and idempotent re-sends). Events are de-duplicated by timetoken,
the first terminal wins, and callbacks registered late get the past replayed in order.

After the terminal the subscription stops by itself; the session stays usable for artifact
downloads until :meth:`TaskSession.close`. Callbacks run on a poll pool thread, one event
at a time per session.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pubnub.pubnub import PubNub

from blocks_network.consumer.artifacts import (
    DownloadedArtifact,
    coerce_artifact_ref,
    download_artifact,
    save_artifacts,
)
from blocks_network.consumer.callbacks import CallbackRegistry, ErrorHandler, Unsubscribe
from blocks_network.consumer.event_log import EventLog, callback_kind
from blocks_network.consumer.events import TaskEvent
from blocks_network.consumer.history import fetch_history
from blocks_network.consumer.realtime import SessionRealtime
from blocks_network.errors import ArtifactError, AuthError, BlocksError, ClosedError
from blocks_network.protocol.artifacts import ArtifactRef
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.constants import (
    STREAM_DRAIN_WINDOW_S,
    TERMINAL_STATES,
    WAIT_FOR_TERMINAL_TIMEOUT_S,
)
from blocks_network.stream import StreamClient, StreamRef
from blocks_network.stream.link import StreamLink
from blocks_network.stream.session_streams import SessionStreams
from blocks_network.transport.poll_loop import SubscriptionMember
from blocks_network.transport.subscription import SubscriptionSink

__all__ = ["TaskSession"]

logger = logging.getLogger(__name__)

ENTRY_POINT = "taskSession"
#: ``task_id`` → a fresh read token; used once when the subscription is refused.
ReadTokenSource = Callable[[], str]
TaskAction = Callable[[str], None]


class TaskSession:
    """A task as the consumer sees it; thread-safe. Use as a context manager or :meth:`close`.

    Create sessions with ``TaskClient.send_message`` or ``TaskClient.connect``.
    """

    def __init__(
        self,
        task_id: str,
        channel: str,
        *,
        realtime: SessionRealtime,
        read_token: str | None,
        agent_name: str | None = None,
        state: str | None = None,
        drain_window_s: float = STREAM_DRAIN_WINDOW_S,
        cancel: TaskAction | None = None,
        terminate: TaskAction | None = None,
        read_token_source: ReadTokenSource | None = None,
        on_close: Callable[[TaskSession], None] | None = None,
        user_id: str | None = None,
    ) -> None:
        self._task_id = task_id
        self._channel = channel
        self._realtime = realtime
        self._read_token = read_token
        self._agent_name = agent_name
        self.drain_window_s = drain_window_s
        self._cancel_action = cancel
        self._terminate_action = terminate
        self._read_token_source = read_token_source
        self._on_close = on_close
        self._callbacks = CallbackRegistry(ENTRY_POINT, f"task {task_id}")
        self._state_lock = threading.Lock()
        self._log = EventLog()
        self._initial_state = state
        self._done = threading.Event()
        # Called once when waiting ends (terminal, refused subscription or close): the async
        # session's futures; none block.
        self._done_callbacks: list[Callable[[], None]] = []
        self._failure: BlocksError | None = None
        self._closed = False
        self._subscription: SubscriptionMember | None = None
        self._token_retries = 1
        # Built only for history and file downloads; the subscription needs none.
        self._pubnub: PubNub | None = None
        # Stream client ids are ``{user id}-stream-NNNN`` (protocol §2).
        self._stream_prefix = user_id or "consumer"
        self._streams = SessionStreams(
            task_id,
            link=self._stream_link,
            terminal_state=lambda: self.state if self.is_terminal else None,
        )

    # --- set-up (TaskClient) ------------------------------------------------------------------

    def _client(self) -> PubNub:
        with self._state_lock:
            if self._closed:
                raise ClosedError(f"session for task {self._task_id} is closed")
            if self._pubnub is None:
                self._pubnub = self._realtime.client(self._read_token)
            return self._pubnub

    def _follow(self, cursor: int) -> None:
        """Subscribe from ``cursor``; events after it arrive through callbacks."""
        sink = SubscriptionSink(self._receive, self._subscription_denied)
        with self._state_lock:
            if self._closed:
                raise ClosedError(f"session for task {self._task_id} is closed")
            subscription = self._realtime.subscription(
                self._channel, self._read_token, cursor, sink
            )
            old, self._subscription = self._subscription, subscription
        if old is not None:
            old.stop()
        # Registered before it starts, so a terminal delivered at once can stop it.
        subscription.start()

    def _catch_up(
        self,
        recorded_state: str | None,
        *,
        follow: bool,
        fetched: tuple[int, list[tuple[int, Any]]] | None = None,
    ) -> None:
        """Load history; then, unless the task is over (history or ``recorded_state``),
        subscribe from the newest event seen (``follow``). ``fetched`` is ``(cursor taken
        before the history was read, the history)`` when the caller read it (the async
        client, over aiohttp); None reads it here (blocking)."""
        if fetched is None:
            before = self._realtime.cursor()
            history = fetch_history(self._client(), self._channel)
        else:
            before, history = fetched
        for timetoken, message in history:
            self._receive(message, timetoken)
        with self._state_lock:
            terminal = self._log.terminal
            hwm = self._log.high_water_mark
        if terminal is None and recorded_state in TERMINAL_STATES:
            # History terminal wins over a lagging record; a record alone still ends it.
            self._receive(TaskEvent.synthetic_terminal(self._task_id, recorded_state).data, None)
            terminal = self._log.terminal
        if terminal is None and follow:
            self._follow(hwm if hwm is not None else before)

    # --- properties ---------------------------------------------------------------------------

    @property
    def task_id(self) -> str:
        return self._task_id

    @property
    def channel(self) -> str:
        """The task channel ``u.{orgId}.{taskId}``."""
        return self._channel

    @property
    def agent_name(self) -> str | None:
        return self._agent_name

    @property
    def state(self) -> str | None:
        """The latest known state: the terminal state once over, else e.g. ``running``."""
        with self._state_lock:
            return self._log.state or self._initial_state

    @property
    def is_terminal(self) -> bool:
        with self._state_lock:
            return self._log.terminal is not None

    @property
    def terminal_event(self) -> TaskEvent | None:
        with self._state_lock:
            return self._log.terminal

    @property
    def events(self) -> list[TaskEvent]:
        """Every event seen so far (history and live), oldest first."""
        with self._state_lock:
            return list(self._log.events)

    @property
    def _stream_announcements(self) -> list[Mapping[str, Any]]:
        """``stream_started`` payloads seen so far (for the streams layer)."""
        with self._state_lock:
            return list(self._log.stream_announcements)

    # --- event intake -----------------------------------------------------------------------------

    def _receive(
        self,
        message: object,
        timetoken: int | None,
        meta: object = None,
        publisher: str | None = None,
    ) -> None:
        event = TaskEvent.from_wire(message, timetoken)
        if event is None:
            logger.debug("ignoring a non-event message on %s", self._channel)
            return
        with self._callbacks.lock:
            with self._state_lock:
                accepted = self._log.add(event)
            if not accepted:
                return
            self._callbacks.deliver("onEvent", event)
            kind = callback_kind(event)
            if kind == "onStream":
                for ref in self._streams.add_announcement(event.data, event.timetoken):
                    self._callbacks.deliver(kind, ref)
            elif kind is not None:
                self._callbacks.deliver(kind, event)
        if event.is_terminal:
            self._mark_done()
            if self._streams.has_open_streams():
                # Draining may wait out the window: not on the poll loop's shared workers,
                # where it would hold up every other session's events.
                try:
                    self._realtime.polls[0].submit(self._after_terminal)
                    return
                except ClosedError:
                    pass
            self._after_terminal()

    def _after_terminal(self) -> None:
        self._drain_streams(self.drain_window_s)
        self._stop_subscription()

    def _stream_link(self) -> StreamLink:
        realtime = self._realtime
        keyset = Keyset(realtime.publish_key or "", realtime.subscribe_key)
        return StreamLink(realtime.endpoint, keyset, self._stream_prefix, realtime.polls)

    def _drain_streams(self, window_s: float) -> None:
        """Let opened streams finish for up to ``window_s`` after the terminal (§8.6)."""
        self._streams.drain(window_s)

    @property
    def _subscribed(self) -> bool:
        """Whether a subscription is following the channel (tests)."""
        with self._state_lock:
            return self._subscription is not None

    def _stop_subscription(self) -> None:
        with self._state_lock:
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.stop()

    def _subscription_denied(self) -> None:
        """The read token was refused: fetch a new one once, else fail waiters."""
        with self._state_lock:
            retry = self._token_retries > 0 and not self._closed and self._log.terminal is None
            self._token_retries -= 1
            hwm = self._log.high_water_mark
            old, self._subscription = self._subscription, None
        if old is not None:
            old.stop()
        if retry and self._read_token_source is not None:
            try:
                self._read_token = self._read_token_source()
                self._follow(hwm if hwm is not None else self._realtime.cursor())
                logger.info("task %s: resubscribed with a fresh read token", self._task_id)
                return
            except BlocksError as exc:
                logger.warning("task %s: could not renew the read token: %s", self._task_id, exc)
        self._failure = AuthError(
            f"reading task {self._task_id}'s channel was denied (the read token expired or was "
            "revoked); connect to the task again with client.connect(task_id)",
            status=403,
        )
        self._mark_done()

    # --- callbacks ------------------------------------------------------------------------------

    def _register(self, kind: str, callback: Callable[[Any], None]) -> Unsubscribe:
        if self._closed:
            raise ClosedError(f"session for task {self._task_id} is closed")
        with self._callbacks.lock:
            with self._state_lock:
                log = self._log
                if kind == "onEvent":
                    replay: list[Any] = list(log.events)
                elif kind == "onTerminal":
                    replay = [log.terminal] if log.terminal is not None else []
                elif kind == "onCancelRequested":
                    cancel = log.cancel_requested
                    replay = [cancel] if cancel is not None and log.terminal is None else []
                elif kind == "onStream":
                    replay = list(self._streams.refs())
                else:
                    replay = [e for e in log.events if callback_kind(e) == kind]
            return self._callbacks.add(kind, callback, replay)

    def on_event(self, callback: Callable[[TaskEvent], None]) -> Unsubscribe:
        """Every event (replays those already seen); returns an unsubscribe function."""
        return self._register("onEvent", callback)

    def on_progress(self, callback: Callable[[TaskEvent], None]) -> Unsubscribe:
        """``progress`` events (state changes and status messages), past ones replayed."""
        return self._register("onProgress", callback)

    def on_artifact(self, callback: Callable[[TaskEvent], None]) -> Unsubscribe:
        """``artifact`` events (``event.artifact_ref``); known artifacts are replayed."""
        return self._register("onArtifact", callback)

    def on_terminal(self, callback: Callable[[TaskEvent], None]) -> Unsubscribe:
        """The terminal event, once; replayed if the task is already over."""
        return self._register("onTerminal", callback)

    def on_system(self, callback: Callable[[TaskEvent], None]) -> Unsubscribe:
        """``system`` events (paused/resumed/heartbeat)."""
        return self._register("onSystem", callback)

    def on_cancel_requested(self, callback: Callable[[TaskEvent], None]) -> Unsubscribe:
        """The backend's ``cancel_requested`` acknowledgement: at most once, never after the
        terminal; replayed unless the task already ended."""
        return self._register("onCancelRequested", callback)

    def on_stream(self, callback: Callable[[StreamRef], None]) -> Unsubscribe:
        """``callback(StreamRef)`` for each announced stream; known ones are replayed."""
        return self._register("onStream", callback)

    # --- streams ------------------------------------------------------------------------------

    def list_streams(self) -> list[StreamRef]:
        """Every stream announced so far (history and live), in announcement order."""
        return self._streams.refs()

    def wait_for_stream(
        self, name: str | None = None, timeout: float | None = WAIT_FOR_TERMINAL_TIMEOUT_S
    ) -> StreamRef:
        """Block until stream ``name`` (declared name, else stream id) is announced.

        With no ``name`` it returns the first stream announced (at least one exists then).
        Raises TimeoutError after ``timeout`` seconds and StreamUnavailableError when the
        task ended without announcing it.
        """
        return self._streams.wait_for_stream(name, timeout)

    def open_all_streams(self) -> list[StreamClient]:
        """Open every readable stream (inbound or bidirectional for the consumer), in order.

        Idempotent; after the terminal it returns only streams opened before and skips the
        rest (stream data is live-only).
        """
        return self._streams.open_all()

    def on_error(self, handler: ErrorHandler) -> Unsubscribe:
        """``handler(error, CallbackErrorContext)`` for exceptions raised by callbacks.

        Without handlers such errors are logged at WARNING. Returns an unsubscribe function.
        """
        if self._closed:
            raise ClosedError(f"session for task {self._task_id} is closed")
        return self._callbacks.add_error_handler(handler)

    # --- waiting ----------------------------------------------------------------------------------

    def _mark_done(self) -> None:
        with self._state_lock:
            callbacks, self._done_callbacks = self._done_callbacks, []
            self._done.set()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one waiter's failure must not cost the others their wake-up
                logger.exception("a wait for the terminal of task %s failed", self._task_id)

    def _when_done(self, callback: Callable[[], None]) -> Unsubscribe:
        """Call ``callback()`` (no arguments, must not block) once waiting for the terminal
        ends; at once if it already has. Returns a function that forgets it."""

        def forget() -> None:
            with self._state_lock:
                if callback in self._done_callbacks:
                    self._done_callbacks.remove(callback)

        with self._state_lock:
            if not self._done.is_set():
                self._done_callbacks.append(callback)
                return forget
        callback()
        return forget

    def wait_for_terminal(self, timeout: float | None = WAIT_FOR_TERMINAL_TIMEOUT_S) -> TaskEvent:
        """Block until the task ends and return its terminal event (immediately if over).

        Raises TimeoutError after ``timeout`` seconds, AuthError if the subscription was
        refused, ClosedError if the session was closed before the task ended.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(
                f"task {self._task_id} did not end within {timeout} s (state: {self.state}); "
                "call wait_for_terminal() again, or cancel() it"
            )
        terminal = self.terminal_event
        if terminal is not None:
            return terminal
        if self._failure is not None:
            raise self._failure
        raise ClosedError(f"session for task {self._task_id} was closed before the task ended")

    # --- artifacts --------------------------------------------------------------------------------

    def list_artifacts(self) -> list[ArtifactRef]:
        """Every artifact reference seen so far (history and live), in arrival order."""
        with self._state_lock:
            return list(self._log.artifacts)

    def download_artifact(self, ref: ArtifactRef | Mapping[str, Any]) -> DownloadedArtifact:
        """The artifact's bytes (inline: decoded locally; file: downloaded, blocking).

        Raises ArtifactError when the download fails, ClosedError after :meth:`close`.
        """
        self._check_open()
        parsed = coerce_artifact_ref(ref)
        pubnub = None
        if parsed.KIND == "file":
            if self._read_token is None:
                raise ArtifactError(f"task {self._task_id}: no read token to download files with")
            pubnub = self._client()
        return download_artifact(parsed, pubnub)

    def save_artifacts(self, directory: str | Path) -> list[Path]:
        """Download every artifact into ``directory`` (created if needed); returns the paths.

        Each file gets a safe name: the last component of the agent's name, control
        characters as ``_``, at most 255 bytes, ``artifact-{i}`` when unnamed; a name
        repeated in this task gets ``-{i}``; an existing file is replaced. An artifact that
        cannot be saved does not stop the others: ArtifactSaveError (an ArtifactError) then
        lists it, after every other artifact was saved. ClosedError after :meth:`close`.
        """
        return save_artifacts(self.list_artifacts(), directory, self.download_artifact)

    # --- control ------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the agent to stop (RPC CancelTask); the terminal arrives as an event."""
        self._check_open()
        if self._cancel_action is None:
            raise ClosedError("this session has no client to send CancelTask with")
        self._cancel_action(self._task_id)

    def terminate(self) -> None:
        """End the task (RPC TerminateTask); the terminal arrives as an event."""
        self._check_open()
        if self._terminate_action is None:
            raise ClosedError("this session has no client to send TerminateTask with")
        self._terminate_action(self._task_id)

    # --- lifecycle ------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"session for task {self._task_id} is closed")

    def close(self) -> None:
        """Stop listening and release the client; safe to call twice."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            pubnub, self._pubnub = self._pubnub, None
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.stop()
        if pubnub is not None:
            pubnub.stop()
        self._streams.close()
        self._mark_done()
        if self._on_close is not None:
            self._on_close(self)

    def __enter__(self) -> TaskSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TaskSession(task_id={self._task_id!r}, state={self.state!r})"
