"""Building :class:`StreamClient` objects, and draining them when a task ends (protocol §8.6).

Both sides use :func:`open_stream_client`: a reader when the holder's direction is inbound or
bidirectional (bidirectional readers filter out their own frames), a writer when it is
outbound or bidirectional (``stream_end`` only for dedicated, non-bidirectional streams).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from blocks_network.protocol.constants import STREAM_REORDER_WINDOW_MS

from .client import StreamClient, StreamInfo
from .descriptor import StreamDescriptor
from .link import StreamLink
from .reader import StreamReader
from .ref import StreamOpener
from .settings import WriterSettings
from .writer import StreamWriter

__all__ = ["consumer_opener", "drain_streams", "open_stream_client"]

logger = logging.getLogger(__name__)

_READS = ("inbound", "bidirectional")
_WRITES = ("outbound", "bidirectional")


def open_stream_client(
    info: StreamInfo,
    *,
    link: StreamLink,
    token: str,
    reorder_window_ms: float = STREAM_REORDER_WINDOW_MS,
    writer_settings: WriterSettings | None = None,
    on_close: Callable[[StreamClient], None] | None = None,
    replay_after: int | None = None,
) -> StreamClient:
    """Create the client for ``info`` and start its subscription (if it reads).

    Returns without waiting for the subscription to connect: reads start from the server's
    replay buffer, so nothing published meanwhile is missed. ``replay_after`` is the timetoken
    the replay starts after (the stream's announcement; None: timetoken 1000, all of it).
    """
    user_id = link.new_client_id()
    reader: StreamReader | None = None
    writer: StreamWriter | None = None
    if info.direction in _READS:
        reader = StreamReader(
            stream_id=info.stream_id,
            channel=info.channel,
            format=info.format,
            user_id=user_id,
            reorder_window_ms=reorder_window_ms,
            filter_own=info.direction == "bidirectional",
        )
    if info.direction in _WRITES:
        writer = StreamWriter(
            stream_id=info.stream_id,
            channel=info.channel,
            format=info.format,
            publisher=link.publisher(),
            token=token,
            user_id=user_id,
            settings=writer_settings or WriterSettings.resolve(),
            send_end=info.affinity == "dedicated" and info.direction != "bidirectional",
        )
    client = StreamClient(info, reader=reader, writer=writer, token=token, on_close=on_close)
    if reader is not None:
        try:
            reader.start(link, token, replay_after=replay_after)
        except Exception:
            client.abort()
            raise
    return client


def consumer_opener(
    link: StreamLink,
    *,
    reorder_window_ms: float = STREAM_REORDER_WINDOW_MS,
    env: Mapping[str, str] | None = None,
    on_open: Callable[[StreamClient], None] | None = None,
) -> StreamOpener:
    """The opener a consumer session gives its StreamRefs (``on_open`` sees each new client)."""
    settings = WriterSettings.resolve(env=env)

    def open_(descriptor: StreamDescriptor) -> StreamClient:
        info = StreamInfo(
            task_id=descriptor.task_id,
            stream_id=descriptor.stream_id,
            channel=descriptor.channel,
            direction=descriptor.local_direction,
            format=descriptor.format,
            affinity=descriptor.affinity,
            declared_stream=descriptor.declared_stream,
            metadata=descriptor.metadata,
        )
        client = open_stream_client(
            info,
            link=link,
            token=descriptor.token,
            reorder_window_ms=reorder_window_ms,
            writer_settings=settings,
            replay_after=descriptor.announced_at,
        )
        if on_open is not None:
            on_open(client)
        return client

    return open_


def drain_streams(clients: Iterable[StreamClient], window_s: float) -> list[StreamClient]:
    """After a terminal: wait up to ``window_s`` for each client to finish reading, then stop
    reading the rest (frames already received stay readable). Writers are flushed and closed.

    Blocks for at most ``window_s`` (plus flushing); returns the clients that did not finish.
    """
    deadline = time.monotonic() + max(0.0, window_s)
    late: list[StreamClient] = []
    for client in list(clients):
        if client.writable and not client.closed:
            try:
                client.flush(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                logger.debug("flushing stream %s failed", client.stream_id, exc_info=True)
        if client.readable and not client.wait_finished(max(0.0, deadline - time.monotonic())):
            late.append(client)
        client.end_reading()
    for client in late:
        logger.info(
            "stream %s did not end within the %.1f s drain window; it was stopped",
            client.stream_id,
            window_s,
        )
    return late
