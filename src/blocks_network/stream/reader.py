"""The reading half of a stream (protocol §8.4): subscribe, reassemble, reorder, hand out.

Each reader runs its own subscribe loop (each stream has its own token; the plain keep-alive
loop of :mod:`blocks_network.transport.subscription`, whose requests are the official
client's) on the stream channel from timetoken 1000, so the server replays what it still buffers, or, when the stream's
announcement timetoken is known, just after it: a shared stream's channel outlives its writer,
and a reopened stream's new writer restarts at the first seq, so the previous writer's cached
frames must not be replayed (they would shadow the new ones as duplicates). A bidirectional reader sets the
filter ``meta.sender != '<own uuid>'`` (and drops its own frames again, defensively). Each
message goes through: channel and shape checks → multipart reassembly → the reorder buffer →
a bounded queue of in-order :class:`InboundFrame` objects. Bad frames (malformed, another
stream's, truncated or conflicting multipart, undecodable chunks) are skipped with a log line.

The reader finishes on ``stream_end`` (once everything before it was delivered or given up),
on a fatal status (``access_denied``, ``bad_request``), on :meth:`end` (drain window over) and
on :meth:`close`. Frames already queued are still handed out after the first three; ``close``
drops them. Every wait is bounded; ``next_frame`` re-checks state at least every half second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from blocks_network.protocol.constants import STREAM_REPLAY_TIMETOKEN, StreamFormat
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.multipart import MultipartAssembler
from blocks_network.protocol.streams import (
    MultipartFrame,
    StreamDataFrame,
    StreamEndFrame,
    StreamEventsFrame,
    parse_stream_frame,
    stream_sender_filter,
)
from blocks_network.transport.subscription import (
    ChannelSubscription,
    PollFailure,
    SubscriptionSink,
)

from .errors import StreamError, StreamErrorCategory, is_error_category
from .frames import InboundFrame
from .link import StreamLink
from .reorder import ReorderBuffer

__all__ = ["DEFAULT_MAX_QUEUED_FRAMES", "ErrorCallback", "StreamReader"]

logger = logging.getLogger(__name__)

ErrorCallback = Callable[[StreamError], None]

#: In-order frames held for a slow consumer before the subscription waits for room.
DEFAULT_MAX_QUEUED_FRAMES: Final = 2048
#: How long a full queue may stall delivery before a frame is dropped (and reported).
_OVERFLOW_TIMEOUT_S: Final = 30.0
_WAIT_SLICE_S: Final = 0.5
#: Skipped frames are logged at WARNING this many times per reader, then at DEBUG.
_LOUD_SKIPS: Final = 20
_ACCESS_DENIED_TEXT: Final = (
    "access denied (HTTP 403): the stream's token was revoked or does not grant reading it"
)


class StreamReader:
    """In-order frames of one stream channel. Thread-safe.

    ``reorder_window_ms`` is the gap timeout (0 disables reordering). Call :meth:`start` to
    subscribe; :meth:`accept` is the entry point for received messages (tests may feed it).
    """

    def __init__(
        self,
        *,
        stream_id: str,
        channel: str,
        format: StreamFormat,
        user_id: str,
        reorder_window_ms: float,
        filter_own: bool = False,
        max_queued: int = DEFAULT_MAX_QUEUED_FRAMES,
    ) -> None:
        self.stream_id = stream_id
        self.channel = channel
        self.format: StreamFormat = format
        self.user_id = user_id
        self._filter_own = filter_own
        self._max_queued = max_queued
        first = StreamEventsFrame.FIRST_SEQ if format == "events" else StreamDataFrame.FIRST_SEQ
        self._reorder: ReorderBuffer[InboundFrame] = ReorderBuffer(
            first, reorder_window_ms / 1000, on_skip=self._log_gap
        )
        self._assembler = MultipartAssembler()
        self._cond = threading.Condition()
        self._ready: deque[InboundFrame] = deque()
        self._finished = threading.Event()
        self._closed = False
        self._error_callbacks: list[ErrorCallback] = []
        # Told (under the lock: they must not block) when a frame is queued or the stream
        # finishes: async readers wake on it instead of holding a thread in next_frame().
        self._listeners: list[Callable[[], None]] = []
        self._subscription: ChannelSubscription | None = None
        self._skips = 0
        self.fatal_error: StreamError | None = None
        self.frames_received = 0

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, link: StreamLink, token: str, *, replay_after: int | None = None) -> None:
        """Subscribe with ``token``, replaying buffered frames newer than ``replay_after`` (None:
        timetoken 1000, everything buffered); returns without waiting."""
        cursor = STREAM_REPLAY_TIMETOKEN
        if replay_after is not None:
            cursor = max(replay_after, STREAM_REPLAY_TIMETOKEN)
        subscription = link.subscription(
            channel=self.channel,
            user_id=self.user_id,
            token=token,
            cursor=cursor,
            sink=SubscriptionSink(self._on_message, self._on_denied, failed=self._on_failed),
            filter_expr=stream_sender_filter(self.user_id) if self._filter_own else None,
        )
        with self._cond:
            if self._closed:
                return
            self._subscription = subscription
        subscription.start()

    @property
    def finished(self) -> bool:
        """True once no more frames will be accepted (queued ones may remain)."""
        return self._finished.is_set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def gap_deadline(self) -> float | None:
        """When the open reorder gap is given up (``time.monotonic()``), or None: a reader
        that waits for listener wake-ups calls :meth:`next_frame` again by then."""
        with self._cond:
            return self._reorder.deadline

    @property
    def exhausted(self) -> bool:
        """True once finished and every queued frame was handed out."""
        with self._cond:
            return self._finished.is_set() and not self._ready

    def end(self) -> None:
        """Stop accepting frames (e.g. the drain window is over); queued frames stay readable."""
        with self._cond:
            self._finish_locked()
        self._stop_client()

    def close(self) -> None:
        """Stop the subscription and drop queued frames; iterators end. Idempotent."""
        with self._cond:
            self._closed = True
            self._ready.clear()
            self._finish_locked()
        self._stop_client()

    def _finish_locked(self) -> None:
        self._finished.set()
        self._wake_locked()

    def _wake_locked(self) -> None:
        self._cond.notify_all()
        for listener in self._listeners:
            listener()

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` (must not block) whenever a frame may be ready or the stream
        finished; returns a function that removes it. Poll with ``next_frame(0)``."""

        def remove() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        with self._cond:
            self._listeners.append(listener)
        return remove

    def _stop_client(self) -> None:
        with self._cond:
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.stop()

    # --- consuming ----------------------------------------------------------------------

    def next_frame(self, timeout: float | None = None) -> InboundFrame | None:
        """The next in-order frame; None once the stream finished and the queue is empty.

        Blocks up to ``timeout`` seconds (None: until a frame or the end) and raises
        TimeoutError when it passes without either.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._ready:
                    frame = self._ready.popleft()
                    self._cond.notify_all()
                    return frame
                if self._finished.is_set():
                    break
                now = time.monotonic()
                self._poll_locked(now)
                if self._ready or self._finished.is_set():
                    continue
                wait = _WAIT_SLICE_S
                gap_deadline = self._reorder.deadline
                if gap_deadline is not None:
                    wait = min(wait, max(0.0, gap_deadline - now))
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        raise TimeoutError(
                            f"no frame on stream {self.stream_id} within {timeout} s"
                        )
                    wait = min(wait, remaining)
                self._cond.wait(wait)
        # Finished and drained: release the subscription now rather than at close().
        self._stop_client()
        return None

    def wait_finished(self, timeout: float) -> bool:
        """Wait until the stream finished (``stream_end`` complete, fatal error, end or close).

        Returns False on timeout. Does not consume frames.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._finished.is_set():
                now = time.monotonic()
                self._poll_locked(now)
                remaining = deadline - now
                if self._finished.is_set():
                    break
                if remaining <= 0:
                    return False
                wait = min(_WAIT_SLICE_S, remaining)
                if self._reorder.deadline is not None:
                    wait = min(wait, max(0.0, self._reorder.deadline - now))
                self._cond.wait(wait)
        return True

    def on_error(self, callback: ErrorCallback) -> Callable[[], None]:
        """Call ``callback(StreamError)`` for each error status; returns an unsubscribe function."""
        with self._cond:
            self._error_callbacks.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._error_callbacks:
                    self._error_callbacks.remove(callback)

        return unsubscribe

    # --- receiving ----------------------------------------------------------------------

    def _on_message(
        self, payload: object, timetoken: int | None, meta: object, publisher: str | None
    ) -> None:
        try:
            self.accept(payload, publisher=publisher, timetoken=timetoken, meta=meta)
        except Exception:
            # Never let one frame end the subscription loop.
            logger.exception("stream %s: frame handling failed", self.stream_id)

    def accept(
        self,
        payload: object,
        *,
        channel: str | None = None,
        publisher: str | None = None,
        timetoken: int | None = None,
        meta: object = None,
    ) -> None:
        """Process one received message (runs on the subscription's worker thread)."""
        if channel is not None and channel != self.channel:
            self._skip(f"message for another channel {channel!r}")
            return
        if self._filter_own and isinstance(meta, Mapping) and meta.get("sender") == self.user_id:
            return
        if not isinstance(payload, Mapping):
            self._skip(f"not a JSON object ({type(payload).__name__})")
            return
        try:
            frame = self._reassemble(parse_stream_frame(payload), payload)
        except ProtocolError as exc:
            self._skip(str(exc))
            return
        if frame is None:
            return
        if isinstance(frame, InboundFrame):
            if not self._finished.is_set():
                self._deliver([frame])
            return
        if frame.stream_id != self.stream_id:
            self._skip(f"frame for another stream id {frame.stream_id!r}")
            return
        now = time.monotonic()
        if isinstance(frame, StreamEndFrame):
            with self._cond:
                released = self._reorder.end(frame.seq, now)
            self._deliver(released)
            return
        try:
            item = self._inbound(frame, payload, publisher, timetoken)
        except ProtocolError as exc:
            self._skip(str(exc))
            return
        with self._cond:
            if self._finished.is_set():
                return
            released = self._reorder.push(item.seq, item, now)
        self._deliver(released)

    def _reassemble(
        self, frame: object, payload: Mapping[str, Any]
    ) -> StreamDataFrame | StreamEventsFrame | StreamEndFrame | InboundFrame | None:
        if frame is None:
            return self._unknown(payload)
        if isinstance(frame, MultipartFrame):
            if frame.stream_id != self.stream_id:
                raise ProtocolError(f"multipart piece for another stream id {frame.stream_id!r}")
            with self._cond:
                whole = self._assembler.add(frame, time.monotonic())
            if whole is None:
                return None
            inner = parse_stream_frame(whole)
            if inner is None or isinstance(inner, MultipartFrame):
                raise ProtocolError("reassembled multipart payload is not a stream frame")
            return inner
        assert isinstance(frame, (StreamDataFrame, StreamEventsFrame, StreamEndFrame))
        return frame

    def _unknown(self, payload: Mapping[str, Any]) -> InboundFrame | None:
        seq = payload.get("seq")
        kind = payload.get("type")
        if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(kind, str):
            raise ProtocolError(f"unknown frame without a type and integer seq: {kind!r}")
        ts = payload.get("ts")
        return InboundFrame(
            type=kind, seq=seq, ts=ts if isinstance(ts, int) else None, raw=dict(payload)
        )

    def _inbound(
        self,
        frame: StreamDataFrame | StreamEventsFrame,
        payload: Mapping[str, Any],
        publisher: str | None,
        timetoken: int | None,
    ) -> InboundFrame:
        if isinstance(frame, StreamDataFrame):
            return InboundFrame.from_data(frame, frame.decode(), payload, publisher, timetoken)
        return InboundFrame.from_events(frame, payload, publisher, timetoken)

    def _deliver(self, frames: list[InboundFrame]) -> None:
        dropped = 0
        with self._cond:
            for frame in frames:
                if not self._wait_for_room_locked():
                    dropped += 1
                    continue
                if self._closed:
                    return
                self._ready.append(frame)
                self.frames_received += 1
            if self._reorder.complete:
                self._finish_locked()
            self._wake_locked()
            callbacks = list(self._error_callbacks) if dropped else []
        if dropped:
            logger.error(
                "stream %s: reader queue full for %.0f s (is anybody reading?); dropped %d frames",
                self.stream_id,
                _OVERFLOW_TIMEOUT_S,
                dropped,
            )
            error = StreamError.create(
                "other", "reader queue overflow: frames dropped", self.channel
            )
            self._notify(error, callbacks)

    def _wait_for_room_locked(self) -> bool:
        deadline = time.monotonic() + _OVERFLOW_TIMEOUT_S
        while len(self._ready) >= self._max_queued and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._cond.wait(min(remaining, _WAIT_SLICE_S))
        return True

    def _poll_locked(self, now: float) -> None:
        released = self._reorder.poll(now)
        if released:
            self._ready.extend(released)
            self.frames_received += len(released)
        if self._reorder.complete:
            self._finish_locked()

    def _skip(self, why: str) -> None:
        self._skips += 1
        level = logging.WARNING if self._skips <= _LOUD_SKIPS else logging.DEBUG
        logger.log(level, "stream %s: skipping a bad frame: %s", self.stream_id, why)

    def _log_gap(self, first: int, last: int) -> None:
        logger.warning(
            "stream %s: frames seq %s..%s never arrived within the reorder window; skipped",
            self.stream_id,
            first,
            last,
        )

    # --- errors -------------------------------------------------------------------------

    def _on_denied(self) -> None:
        self.report_error("access_denied", _ACCESS_DENIED_TEXT)

    def _on_failed(self, why: PollFailure, description: str) -> None:
        self.report_error(why, description)

    def report_error(self, category: StreamErrorCategory, description: str) -> None:
        """Report a subscription error to ``on_error`` callbacks; a fatal one
        (``access_denied``, ``bad_request``) then ends the stream and its subscription, so
        an iterator that ends on it finds the callbacks already called."""
        if self._closed or not is_error_category(category):
            return
        error = StreamError.create(category, description, self.channel)
        with self._cond:
            if self.fatal_error is not None:
                # The stream is over; later errors add nothing.
                return
            if error.fatal:
                self.fatal_error = error
            callbacks = list(self._error_callbacks)
        if not error.fatal:
            logger.info("stream %s: %s (%s)", self.stream_id, error.category, error.error)
            self._notify(error, callbacks)
            return
        logger.warning(
            "stream %s ended: %s (%s); the stream's access was revoked or is invalid",
            self.stream_id,
            error.category,
            error.error,
        )
        self._notify(error, callbacks)
        with self._cond:
            self._finish_locked()
        self._stop_client()

    def _notify(self, error: StreamError, callbacks: list[ErrorCallback]) -> None:
        for callback in callbacks:
            try:
                callback(error)
            except Exception:
                logger.exception("stream %s: on_error callback raised", self.stream_id)
