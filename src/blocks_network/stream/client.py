"""An open stream, from either side: :class:`StreamClient`.

A client reads when its local direction is inbound or bidirectional and writes when it is
outbound or bidirectional. The agent's ``ctx.create_stream(...)`` and the consumer's
``StreamRef.open()`` both return one.

Reading: ``for frame in stream.inbound`` (raw in-order frames), ``stream.bytes()`` (decoded
byte chunks of a bytes stream), ``stream.events()`` (events of an events stream, flattened),
``stream.as_file()`` (a read-only binary file). Iterators end on ``stream_end``, on a fatal
error (``access_denied``/``bad_request``), when the session's drain window is over, and on
``close()``. Errors arrive through ``on_error(cb)``.
"""

from __future__ import annotations

import builtins
import io
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from blocks_network.protocol.constants import StreamAffinity, StreamDirection, StreamFormat
from blocks_network.protocol.errors import ProtocolError

from .errors import StreamClosedError, StreamError
from .frames import InboundFrame
from .reader import ErrorCallback, StreamReader
from .writer import StreamWriter

__all__ = ["StreamClient", "StreamInfo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamInfo:
    """Identity of a stream as one side sees it (``direction`` is the holder's own)."""

    task_id: str
    stream_id: str
    channel: str
    direction: StreamDirection
    format: StreamFormat
    affinity: StreamAffinity
    declared_stream: str | None = None
    metadata: Mapping[str, Any] | None = None


class StreamClient:
    """One open stream. Thread-safe; a context manager (``close()`` on exit).

    Iterate from one thread at a time: the iterators share one queue of frames.
    """

    def __init__(
        self,
        info: StreamInfo,
        *,
        reader: StreamReader | None = None,
        writer: StreamWriter | None = None,
        token: str | None = None,
        on_close: Callable[[StreamClient], None] | None = None,
    ) -> None:
        self.info = info
        self.token = token
        self._reader = reader
        self._writer = writer
        self._on_close = on_close
        self._lock = threading.Lock()
        self._closed = False
        self._done = threading.Event()
        # Events of a frame that an abandoned events() iterator did not hand out yet.
        self._backlog: deque[Any] = deque()

    # --- identity -----------------------------------------------------------------------

    @property
    def task_id(self) -> str:
        return self.info.task_id

    @property
    def stream_id(self) -> str:
        return self.info.stream_id

    @property
    def channel(self) -> str:
        return self.info.channel

    @property
    def direction(self) -> StreamDirection:
        """This side's direction (``inbound`` reads, ``outbound`` writes)."""
        return self.info.direction

    @property
    def format(self) -> StreamFormat:
        return self.info.format

    @property
    def declared_stream(self) -> str | None:
        return self.info.declared_stream

    @property
    def metadata(self) -> Mapping[str, Any] | None:
        return self.info.metadata

    @property
    def readable(self) -> bool:
        return self._reader is not None

    @property
    def writable(self) -> bool:
        return self._writer is not None

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def finished(self) -> bool:
        """True once nothing more will be read (or, for a write-only stream, after ``end``)."""
        if self._reader is not None:
            return self._reader.finished
        return self._closed or (self._writer is not None and self._writer.closed)

    @property
    def exhausted(self) -> bool:
        """True once the stream is over for this side: closed, ended (write-only), or finished
        reading with every received frame handed out."""
        if self._closed:
            return True
        if self._reader is not None:
            return self._reader.exhausted
        return self._writer is not None and self._writer.closed

    @property
    def fatal_error(self) -> StreamError | None:
        """The fatal error that ended the stream, if one did."""
        return None if self._reader is None else self._reader.fatal_error

    # --- reading ------------------------------------------------------------------------

    def _require_reader(self, what: str) -> StreamReader:
        if self._reader is None:
            raise TypeError(
                f"stream {self.stream_id} is {self.direction} from this side: {what} needs an "
                "inbound or bidirectional stream"
            )
        return self._reader

    @property
    def inbound(self) -> Iterator[InboundFrame]:
        """In-order frames as received (``seq``, ``ts``, ``encoding``, chunks or events)."""
        return self.frames()

    def frames(self, timeout: float | None = None) -> Iterator[InboundFrame]:
        """Iterate in-order frames; ``timeout`` bounds each wait (TimeoutError when passed)."""
        reader = self._require_reader("reading")
        while True:
            frame = reader.next_frame(timeout)
            if frame is None:
                return
            yield frame

    def bytes(self, timeout: float | None = None) -> Iterator[bytes]:
        """Iterate the decoded bytes of each data frame (a bytes stream).

        Events frames are skipped with a log line. ``timeout`` bounds each wait.
        """
        for frame in self.frames(timeout):
            data = self._frame_bytes(frame)
            if data:
                yield data

    def _frame_bytes(self, frame: InboundFrame) -> builtins.bytes | None:
        """A data frame's bytes; None (logged) for any other frame (sync and async reads)."""
        if frame.type == "stream_data":
            return frame.data
        logger.warning(
            "stream %s: bytes() skips a %s frame; use events() or inbound",
            self.stream_id,
            frame.type,
        )
        return None

    def _take_events(self, frame: InboundFrame) -> None:
        """Queue an events frame's events for events() (sync and async); others are skipped
        with a log line."""
        if frame.type != "stream_events":
            logger.warning(
                "stream %s: events() skips a %s frame; use bytes() or inbound",
                self.stream_id,
                frame.type,
            )
            return
        try:
            self._backlog.extend(frame.decoded_events())
        except ProtocolError as exc:
            logger.warning("stream %s: skipping frame seq %s: %s", self.stream_id, frame.seq, exc)

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """Iterate events one by one (an events stream); ``{"$binary": ...}`` becomes bytes.

        Events of a frame not yet handed out stay with the client, so a new ``events()``
        iterator goes on where the last one stopped. Data frames are skipped with a log line.
        ``timeout`` bounds each wait.
        """
        while True:
            while self._backlog:
                yield self._backlog.popleft()
            frame = self._require_reader("reading").next_frame(timeout)
            if frame is None:
                return
            self._take_events(frame)

    def read_all(self, timeout: float | None = None) -> builtins.bytes:
        """Read a bytes stream to its end and return everything (blocks until the end)."""
        return b"".join(self.bytes(timeout))

    def as_file(self) -> io.BufferedReader:
        """A read-only binary file over :meth:`bytes` (``read``, ``readline``, iteration)."""
        self._require_reader("as_file()")
        return io.BufferedReader(_StreamFile(self.bytes()))

    def wait_finished(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the inbound side to finish; False on timeout."""
        if self._reader is None:
            return self.finished
        return self._reader.wait_finished(timeout)

    def on_error(self, callback: ErrorCallback) -> Callable[[], None]:
        """Call ``callback(StreamError)`` on each error status; returns an unsubscribe function.

        Fatal errors (``access_denied``, ``bad_request``) also end the iterators.
        """
        if self._reader is None:
            return lambda: None
        return self._reader.on_error(callback)

    # --- writing ------------------------------------------------------------------------

    def _require_writer(self) -> StreamWriter:
        if self._writer is None:
            raise TypeError(
                f"stream {self.stream_id} is {self.direction} from this side: only outbound or "
                "bidirectional streams can be written"
            )
        if self._closed:
            raise StreamClosedError(f"stream {self.stream_id} is closed")
        return self._writer

    def write(self, data: object) -> None:
        """Send ``str``/``bytes`` (bytes stream) or a JSON value (events stream).

        Buffered and batched; blocks only when publishing falls behind. Raises TypeError on a
        read-only stream or a wrong value type, StreamClosedError after ``end``/``close``.
        """
        self._require_writer().write(data)

    def flush(self, timeout: float = 60.0) -> bool:
        """Publish what is buffered and wait for it; False if still pending after ``timeout``."""
        return self._require_writer().flush(timeout)

    def end(self) -> None:
        """Finish writing: flush, and publish ``stream_end`` when this stream carries one
        (dedicated, not bidirectional). Idempotent; a read-only stream is closed instead."""
        if self._writer is None:
            self.close()
            return
        self._writer.end()
        if self._reader is None:
            self._mark_done()

    # --- closing ------------------------------------------------------------------------

    def end_reading(self) -> None:
        """Stop reading but keep frames already received readable (drain window over)."""
        if self._reader is not None:
            self._reader.end()

    def close(self) -> None:
        """Flush and stop writing (no ``stream_end``), stop reading; iterators end. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self._reader is not None:
            self._reader.close()
        self._mark_done()

    def abort(self) -> None:
        """Close at once, dropping buffered writes (a crashed or failed stream)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._writer is not None:
            self._writer.abort()
        if self._reader is not None:
            self._reader.close()
        self._mark_done()

    def _mark_done(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        if self._on_close is not None:
            try:
                self._on_close(self)
            except Exception:
                logger.exception("stream %s: close hook failed", self.stream_id)

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A clean exit ends the stream (:meth:`end`: readers see it end, as after the
        async ``async with``), then closes it; an exception closes it without ``stream_end``."""
        if exc_type is None:
            self.end()
        self.close()

    def __repr__(self) -> str:
        return (
            f"StreamClient(stream_id={self.stream_id!r}, direction={self.direction!r}, "
            f"format={self.format!r}, declared_stream={self.declared_stream!r})"
        )


class _StreamFile(io.RawIOBase):
    """Raw binary reads over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
