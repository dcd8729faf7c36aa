"""A consumer's handle on one announced stream: :class:`StreamRef` (protocol §8.5).

The descriptor is always readable. ``open()`` subscribes (and/or prepares to write) once and
returns the same :class:`StreamClient` while it is active; opening a stream that is over raises
StreamClosedError; opening a never-opened stream of a finished task raises
StreamUnavailableError (stream data is live-only, nothing can be replayed after the end).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from blocks_network.errors import StreamUnavailableError

from .client import StreamClient
from .descriptor import StreamDescriptor
from .errors import StreamClosedError

__all__ = ["StreamOpener", "StreamRef"]

#: Creates the client of a descriptor (the session supplies it: token, keyset, user id...).
StreamOpener = Callable[[StreamDescriptor], StreamClient]


class StreamRef:
    """One stream of a task, as the consumer session announced it. Thread-safe.

    ``terminal_state()`` returns the task's terminal state, or None while it runs.
    """

    def __init__(
        self,
        descriptor: StreamDescriptor,
        *,
        opener: StreamOpener,
        terminal_state: Callable[[], str | None],
    ) -> None:
        self.descriptor = descriptor
        self._opener = opener
        self._terminal_state = terminal_state
        self._lock = threading.Lock()
        self._client: StreamClient | None = None

    @property
    def stream_id(self) -> str:
        return self.descriptor.stream_id

    @property
    def declared_stream(self) -> str | None:
        return self.descriptor.declared_stream

    @property
    def client(self) -> StreamClient | None:
        """The client ``open()`` returned, if it was called."""
        return self._client

    @property
    def opened(self) -> bool:
        """True once ``open()`` succeeded (even if the stream is over since)."""
        return self._client is not None

    @property
    def active(self) -> bool:
        """True while the opened client still has something to read or write."""
        client = self._client
        return client is not None and not client.exhausted

    def open(self) -> StreamClient:
        """Open the stream, or return the client already open for it.

        Does not wait for the subscription. Raises StreamClosedError when the stream was
        opened and is over (ended, failed or closed), StreamUnavailableError when the task is
        terminal and the stream was never opened.
        """
        with self._lock:
            client = self._client
            if client is not None:
                if client.exhausted:
                    raise StreamClosedError(
                        f"stream {self.stream_id!r} of task {self.descriptor.task_id!r} has "
                        "ended and cannot be reopened: stream data is live-only"
                    )
                return client
            state = self._terminal_state()
            if state is not None:
                raise StreamUnavailableError(
                    self.descriptor.task_id,
                    self.stream_id,
                    self.descriptor.declared_stream,
                    state,
                )
            self._client = self._opener(self.descriptor)
            return self._client

    def __repr__(self) -> str:
        d = self.descriptor
        return (
            f"StreamRef(stream_id={d.stream_id!r}, declared_stream={d.declared_stream!r}, "
            f"direction={d.local_direction!r}, format={d.format!r})"
        )
