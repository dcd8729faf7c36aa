"""The realtime service: the components every realtime route shares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from blocks_devnet.realtime.access import AccessGate
from blocks_devnet.realtime.channel_groups import ChannelGroups
from blocks_devnet.realtime.file_store import FileStore
from blocks_devnet.realtime.http import RealtimeRequest
from blocks_devnet.realtime.keysets import KeysetRegistry
from blocks_devnet.realtime.message_log import MessageLog
from blocks_devnet.realtime.presence import PresenceTracker
from blocks_devnet.store import database
from blocks_devnet.store.database import DEFAULT_WAL_LIMIT_BYTES, Database
from blocks_devnet.store.retention import Retention, Sweeper

logger = logging.getLogger(__name__)

#: Unstored (buffer-only) messages are kept on disk this long for catch-up after a restart.
BUFFER_RETENTION_SECONDS = 15 * 60
#: How often idle channel logs leave memory.
PRUNE_INTERVAL_SECONDS = 10.0

#: Default long-poll hold, below the client's 310 s read timeout (PubNub uses ~280 s).
DEFAULT_LONG_POLL_SECONDS = 280.0

#: ``interceptor(request, channel, message)`` may answer a publish itself (the Blocks
#: stream-setup hook answers with a 403 carrying its reply); ``None`` lets it through.
PublishInterceptor = Callable[[RealtimeRequest, str, Any], web.Response | None]


@dataclass
class RealtimeService:
    db: Database
    keysets: KeysetRegistry
    messages: MessageLog
    access: AccessGate
    presence: PresenceTracker
    file_store: FileStore
    channel_groups: ChannelGroups
    long_poll_seconds: float = DEFAULT_LONG_POLL_SECONDS
    interceptors: list[PublishInterceptor] = field(default_factory=list)
    #: How long channel history is kept (and finished task records, see TaskService).
    retention: Retention = field(default_factory=lambda: Retention(None))
    #: The WAL file is started over once it passes this size (Database.checkpoint_in_background).
    wal_limit_bytes: int = DEFAULT_WAL_LIMIT_BYTES
    #: Deletes old rows in small batches; components add their sweeps before start.
    sweeper: Sweeper = field(default_factory=Sweeper)
    #: Set at shutdown so held long-polls answer at once.
    closing: bool = False

    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sweeper.add("unstored messages", self._sweep_unstored)
        self.sweeper.add("expired messages", self.messages.sweep_expired)
        self.sweeper.add("expired revocations", self._sweep_revocations)
        if self.retention.seconds is not None:
            self.sweeper.add("messages past retention", self._sweep_past_retention)

    async def start(self) -> None:
        """Start background work (presence timeouts, idle logs, the sweeper, checkpoints)
        on the running loop."""
        # One commit per event-loop turn, every answer after it (see commit_gate.py).
        self.db.batch_commits(asyncio.get_running_loop())
        self.db.checkpoint_in_background(
            database.CHECKPOINT_INTERVAL_SECONDS, wal_limit_bytes=self.wal_limit_bytes
        )
        self._tasks.append(asyncio.create_task(self.presence.run(), name="presence-sweeper"))
        self._tasks.append(asyncio.create_task(self._prune_forever(), name="message-prune"))
        self._tasks.append(asyncio.create_task(self.sweeper.run(), name="retention-sweeper"))

    def _sweep_revocations(self, limit: int) -> int:
        return self.access.prune_revoked(time.time(), limit)

    def _sweep_unstored(self, limit: int) -> int:
        horizon = self.messages.clock.head() - BUFFER_RETENTION_SECONDS * 10_000_000
        return self.messages.sweep_unstored(horizon, limit)

    def _sweep_past_retention(self, limit: int) -> int:
        assert self.retention.seconds is not None
        horizon = self.messages.clock.head() - int(self.retention.seconds * 10_000_000)
        return self.messages.sweep_older_than(horizon, limit)

    async def stop(self) -> None:
        """Release long-polls and cancel background work; safe to call twice."""
        self.closing = True
        self.messages.close()
        self.presence.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.db.commit()

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)
            evicted = self.messages.evict_idle()
            if evicted:
                logger.debug("dropped %d idle channel logs", evicted)

    def intercept_publish(
        self, req: RealtimeRequest, channel: str, message: Any
    ) -> web.Response | None:
        for interceptor in self.interceptors:
            answer = interceptor(req, channel, message)
            if answer is not None:
                return answer
        return None


SERVICE_KEY: web.AppKey[RealtimeService] = web.AppKey("realtime_service", RealtimeService)


def service_of(request: web.Request) -> RealtimeService:
    return request.app[SERVICE_KEY]
