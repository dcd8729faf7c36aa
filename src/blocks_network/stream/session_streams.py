"""The streams of one consumer session (protocol §4.4, §8.5, §8.6).

A :class:`TaskSession` feeds every ``stream_started`` announcement it accepts to
:class:`SessionStreams`, which keeps one :class:`StreamRef` per stream id (the first
announcement wins) in arrival order, answers ``wait_for_stream``/``list_streams``/
``open_all_streams``, and drains the opened streams after the terminal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from blocks_network.errors import StreamUnavailableError
from blocks_network.protocol.constants import STREAM_REORDER_WINDOW_MS
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.stream_setup import StreamStarted

from .client import StreamClient
from .descriptor import StreamDescriptor
from .errors import StreamClosedError
from .link import StreamLink
from .opening import consumer_opener, drain_streams
from .ref import StreamRef

__all__ = ["SessionStreams"]

logger = logging.getLogger(__name__)

_WAIT_SLICE_S = 0.5


class SessionStreams:
    """Stream refs of one task, in announcement order. Thread-safe.

    ``link()`` builds the session's :class:`StreamLink` (called once, on the first open);
    ``terminal_state()`` is the task's terminal state or None while it runs.
    """

    def __init__(
        self,
        task_id: str,
        *,
        link: Callable[[], StreamLink],
        terminal_state: Callable[[], str | None],
        reorder_window_ms: float = STREAM_REORDER_WINDOW_MS,
    ) -> None:
        self._task_id = task_id
        self._link_factory = link
        self._terminal_state = terminal_state
        self._reorder_window_ms = reorder_window_ms
        self._cond = threading.Condition()
        self._refs: dict[str, StreamRef] = {}
        self._opener: Callable[[StreamDescriptor], StreamClient] | None = None
        self._link: StreamLink | None = None
        self._closed = False

    # --- intake -------------------------------------------------------------------------

    def add_announcement(
        self, announcement: Mapping[str, Any], timetoken: int | None = None
    ) -> list[StreamRef]:
        """Record a ``stream_started`` event (``timetoken``: its PubNub timetoken, if known);
        returns the refs of streams it introduced."""
        try:
            started = StreamStarted.from_wire(announcement)
        except ProtocolError as exc:
            logger.warning(
                "task %s: ignoring a malformed stream announcement: %s", self._task_id, exc
            )
            return []
        fresh: list[StreamRef] = []
        with self._cond:
            for stream_id, entry in started.streams.items():
                if stream_id in self._refs:
                    continue
                descriptor = StreamDescriptor.for_consumer(
                    started.task_id, stream_id, entry, started.declared_stream, timetoken
                )
                ref = StreamRef(descriptor, opener=self._open, terminal_state=self._terminal_state)
                self._refs[stream_id] = ref
                fresh.append(ref)
            self._cond.notify_all()
        return fresh

    def _open(self, descriptor: StreamDescriptor) -> StreamClient:
        with self._cond:
            if self._closed:
                raise StreamClosedError(f"the session of task {self._task_id} is closed")
            if self._opener is None:
                self._link = self._link_factory()
                self._opener = consumer_opener(
                    self._link, reorder_window_ms=self._reorder_window_ms
                )
            opener = self._opener
        return opener(descriptor)

    # --- queries ------------------------------------------------------------------------

    def refs(self) -> list[StreamRef]:
        """Every announced stream, in announcement order."""
        with self._cond:
            return list(self._refs.values())

    def _match(self, name: str | None) -> StreamRef | None:
        refs = list(self._refs.values())
        if name is None:
            # The seed's "wait_for_stream()  # ensure at least one is announced" must work
            # for agents with several streams, so no name means the first announced.
            return refs[0] if refs else None
        for ref in refs:
            if ref.descriptor.declared_stream == name:
                return ref
        return self._refs.get(name)

    def wait_for_stream(self, name: str | None = None, timeout: float | None = 60.0) -> StreamRef:
        """The stream named ``name`` (declared name first, then stream id); with no name, the
        first stream announced.

        Blocks until it is announced. Raises TimeoutError after ``timeout`` seconds and
        StreamUnavailableError when the task ended without announcing it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                ref = self._match(name)
                if ref is not None:
                    return ref
                state = self._terminal_state()
                if state is not None or self._closed:
                    raise StreamUnavailableError(self._task_id, name or "", name, state)
                wait = _WAIT_SLICE_S
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        what = f"stream {name!r}" if name else "a stream"
                        raise TimeoutError(
                            f"task {self._task_id} announced no {what} within {timeout} s; was "
                            "it sent with stream=True, and does its agent create that stream?"
                        )
                    wait = min(wait, remaining)
                self._cond.wait(wait)

    def open_all(self) -> list[StreamClient]:
        """Open every readable stream (inbound or bidirectional for this side), in order.

        Idempotent: already-opened refs give their existing client. Refs that cannot be
        opened (never opened before the terminal, already over) are skipped.
        """
        clients: list[StreamClient] = []
        for ref in self.refs():
            if not ref.descriptor.readable:
                continue
            if ref.client is not None:
                clients.append(ref.client)
                continue
            try:
                clients.append(ref.open())
            except (StreamUnavailableError, StreamClosedError) as exc:
                logger.debug("open_all_streams skips %s: %s", ref.stream_id, exc)
        return clients

    def opened(self) -> list[StreamClient]:
        """Clients of the refs opened so far."""
        return [r.client for r in self.refs() if r.client is not None]

    # --- end ----------------------------------------------------------------------------

    def notify_terminal(self) -> None:
        """Wake ``wait_for_stream`` callers so they see the terminal."""
        with self._cond:
            self._cond.notify_all()

    def has_open_streams(self) -> bool:
        """Whether any opened stream is still being read (a drain would wait for it)."""
        return any(not c.closed for c in self.opened())

    def drain(self, window_s: float) -> None:
        """After the terminal: let opened streams finish for up to ``window_s``, then stop
        reading them (received frames stay readable). Returns at once with none open."""
        self.notify_terminal()
        clients = [c for c in self.opened() if not c.closed]
        if clients:
            drain_streams(clients, window_s)

    def close(self) -> None:
        """Close every opened stream; later opens fail. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for client in self.opened():
            client.close()
        if self._link is not None:
            self._link.close()
