"""The writing half of a stream (protocol §8.3): batching, frames, publishing with retries.

``write()`` buffers; the buffer is cut into frames once it holds ``bundle_size_bytes``, or
``max_latency_ms`` after the first unflushed write (a ``blocks-stream-flush-*`` thread owns
that timer). Frames are published by a small pool (``blocks-stream-pub-*``), a few at a time:
concurrent publishes may reach the server out of order, which readers repair by seq. A
publish is tried 3 times (100 ms, then 200 ms apart); a final failure is logged, not raised.
``write()`` blocks while too many frames are waiting to be sent (backpressure).

``end()`` sends what is buffered, waits for every publish, then (for a dedicated stream that
is not bidirectional) publishes ``stream_end``, and stops the threads. ``close()`` stops
without ``stream_end``. Both are idempotent; writing afterwards raises StreamClosedError.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

from blocks_network.errors import ClosedError, NetworkError
from blocks_network.protocol.constants import StreamFormat
from blocks_network.protocol.streams import stream_frame_meta
from blocks_network.transport.publisher import TokenPublisher, encode_meta

from .encoder import EncodedFrame, FrameEncoder, serialize_event
from .errors import StreamClosedError
from .settings import WriterSettings

__all__ = ["PUBLISH_CONCURRENCY", "StreamWriter"]

logger = logging.getLogger(__name__)

#: Publishes in flight at once per stream (loopback: about twice the throughput of one).
PUBLISH_CONCURRENCY: Final = 3
#: Frames queued for publishing before ``write()`` blocks.
_MAX_QUEUED_FRAMES: Final = 64
#: How long ``end()``/``flush()`` wait for queued publishes before giving up.
_DRAIN_TIMEOUT_S: Final = 60.0
#: Longest single wait slice, so every wait re-checks for close().
_WAIT_SLICE_S: Final = 0.5


class StreamWriter:
    """Writes frames of one stream as ``user_id`` with ``token``. Thread-safe.

    ``send_end`` says whether ``end()`` publishes ``stream_end`` (dedicated, non-bidirectional
    streams only). ``on_publish_failed(reason)`` is told once when a frame is finally lost.
    """

    def __init__(
        self,
        *,
        stream_id: str,
        channel: str,
        format: StreamFormat,
        publisher: TokenPublisher,
        token: str | None,
        user_id: str,
        settings: WriterSettings,
        send_end: bool,
        on_publish_failed: Callable[[str], None] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.channel = channel
        self.format: StreamFormat = format
        self.settings = settings
        self._publisher = publisher
        self._url = publisher.publish_path(
            channel,
            user_id=user_id,
            token=token,
            meta_json=encode_meta(stream_frame_meta(user_id)),
            store=False,
        )
        self._send_end = send_end
        self._on_publish_failed = on_publish_failed
        self._encoder = FrameEncoder(stream_id, format, settings.max_message_size)
        self._cond = threading.Condition()
        self._chunks: list[str | bytes] = []
        self._events: list[str] = []
        self._buffered = 0
        self._first_write_at: float | None = None
        self._queued = 0
        self._closed = False
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._flusher: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._denied_logged = False
        self.frames_sent = 0
        self.frames_failed = 0
        self.bytes_sent = 0

    # --- public API ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True after ``end()`` or ``close()``."""
        return self._closed

    def write(self, data: object) -> None:
        """Buffer one write; returns at once unless too many frames wait to be published.

        Bytes streams take ``str`` (sent as UTF-8 text) or bytes-like values; events streams
        take any JSON value except a bare string (bytes travel as ``{"$binary": ...}``).
        Raises TypeError for anything else and StreamClosedError after ``end()``/``close()``.
        """
        if self.format == "events":
            item: str | bytes = serialize_event(data)
            size = len(item)
        elif isinstance(data, str):
            item, size = data, len(data)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            item = bytes(data)
            size = len(item)
        else:
            raise TypeError(
                f"a bytes stream takes str or bytes, got {type(data).__name__}; "
                "create the stream with format='events' to send JSON values"
            )
        with self._cond:
            self._wait_for_room()
            if self.format == "events":
                assert isinstance(item, str)
                self._events.append(item)
            else:
                self._chunks.append(item)
            self._buffered += size
            if (
                self._buffered >= self.settings.bundle_size_bytes
                or self.settings.max_latency_ms == 0
            ):
                self._cut_locked()
            elif self._first_write_at is None:
                self._first_write_at = time.monotonic()
                self._ensure_flusher_locked()
                self._cond.notify_all()

    def flush(self, timeout: float = _DRAIN_TIMEOUT_S) -> bool:
        """Send what is buffered now and wait until every queued publish finished.

        Returns False if publishes were still pending after ``timeout`` seconds.
        """
        with self._cond:
            if self._closed:
                return self._queued == 0
            self._cut_locked()
            return self._wait_drained_locked(timeout)

    def end(self) -> None:
        """Flush, wait for publishes, publish ``stream_end`` if this writer sends it, stop.

        Blocks for the publishes (bounded); idempotent.
        """
        self._finish(send_end=self._send_end)

    def close(self) -> None:
        """Flush what is buffered and stop without ``stream_end``; idempotent."""
        self._finish(send_end=False)

    def abort(self) -> None:
        """Stop now: drop what is buffered, cancel queued publishes and retries; idempotent."""
        with self._cond:
            self._chunks, self._events, self._buffered = [], [], 0
            self._first_write_at = None
            self._closed = True
            self._abort.set()
            self._cond.notify_all()
        self._stop_threads(cancel=True)

    # --- batching -----------------------------------------------------------------------

    def _wait_for_room(self) -> None:
        while self._queued >= _MAX_QUEUED_FRAMES and not self._closed:
            self._cond.wait(_WAIT_SLICE_S)
        if self._closed:
            raise StreamClosedError(
                f"stream {self.stream_id} has ended; create a new stream to send more"
            )

    def _take_frames_locked(self) -> list[EncodedFrame]:
        if self.format == "events":
            frames = self._encoder.encode_events(self._events) if self._events else []
            self._events = []
        else:
            frames = self._encoder.encode_chunks(self._chunks) if self._chunks else []
            self._chunks = []
        self._buffered = 0
        self._first_write_at = None
        return frames

    def _cut_locked(self) -> None:
        for frame in self._take_frames_locked():
            self._submit_locked(frame)

    def _submit_locked(self, frame: EncodedFrame) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=PUBLISH_CONCURRENCY,
                thread_name_prefix=f"blocks-stream-pub-{self.stream_id}",
            )
        self._queued += 1
        futures = [self._pool.submit(self._publish, body, frame.seq) for body in frame.bodies]
        countdown = [len(futures)]

        def done(_: Future[bool]) -> None:
            with self._cond:
                countdown[0] -= 1
                if countdown[0] == 0:
                    self._queued -= 1
                    self._cond.notify_all()

        for future in futures:
            future.add_done_callback(done)

    def _ensure_flusher_locked(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_loop,
                name=f"blocks-stream-flush-{self.stream_id}",
                daemon=True,
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        latency_s = self.settings.max_latency_ms / 1000
        while True:
            inline: EncodedFrame | None = None
            with self._cond:
                while inline is None:
                    if self._stop.is_set():
                        return
                    if self._first_write_at is None:
                        self._cond.wait(_WAIT_SLICE_S)
                        continue
                    remaining = self._first_write_at + latency_s - time.monotonic()
                    if remaining > 0:
                        self._cond.wait(min(remaining, _WAIT_SLICE_S))
                        continue
                    frames = self._take_frames_locked()
                    if len(frames) == 1 and len(frames[0].bodies) == 1 and self._queued == 0:
                        # A lone latency flush: publish it here, saving a hand-off to the pool.
                        inline = frames[0]
                        self._queued += 1
                    else:
                        for frame in frames:
                            self._submit_locked(frame)
            try:
                self._publish(inline.bodies[0], inline.seq)
            finally:
                with self._cond:
                    self._queued -= 1
                    self._cond.notify_all()

    def _wait_drained_locked(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._queued > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._cond.wait(min(remaining, _WAIT_SLICE_S))
        return True

    # --- publishing ---------------------------------------------------------------------

    def _publish(self, body: bytes, seq: int) -> bool:
        """Publish one body with retries; never raises (the pool would swallow it anyway)."""
        try:
            response = self._publisher.post_with_retries(self._url, body, stop=self._abort)
        except ClosedError:
            reason = "stream aborted"
        except NetworkError as exc:
            reason = str(exc)
        else:
            if response.status == 200:
                with self._cond:
                    self.frames_sent += 1
                    self.bytes_sent += len(body)
                return True
            reason = f"HTTP {response.status} {response.text[:200]}"
        self._report_failure(seq, reason)
        return False

    def _report_failure(self, seq: int, reason: str) -> None:
        with self._cond:
            self.frames_failed += 1
            first_denial = "HTTP 403" in reason and not self._denied_logged
            if first_denial:
                self._denied_logged = True
        if "HTTP 403" in reason:
            if first_denial:
                logger.warning(
                    "stream %s: publishing refused (HTTP 403): the stream's access token expired "
                    "or was revoked (the task ended?); further frames are dropped",
                    self.stream_id,
                )
        else:
            logger.warning(
                "stream %s: frame seq %s lost after retries: %s", self.stream_id, seq, reason
            )
        if self._on_publish_failed is not None:
            try:
                self._on_publish_failed(reason)
            except Exception:
                logger.exception("stream %s: on_publish_failed callback failed", self.stream_id)

    # --- shutdown -----------------------------------------------------------------------

    def _finish(self, *, send_end: bool) -> None:
        with self._cond:
            if self._closed:
                return
            self._cut_locked()
            drained = self._wait_drained_locked(_DRAIN_TIMEOUT_S)
            self._closed = True
            end_body = self._encoder.encode_end() if send_end else None
            self._cond.notify_all()
        if not drained:
            logger.warning("stream %s: gave up waiting for queued publishes", self.stream_id)
        if end_body is not None:
            self._publish(end_body, self._encoder.next_seq)
        self._stop_threads(cancel=False)

    def _stop_threads(self, *, cancel: bool) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            flusher, pool = self._flusher, self._pool
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=5)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=cancel)
