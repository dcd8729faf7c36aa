"""Per-channel message logs: the one place where a message gets its timetoken.

Assigning the timetoken, appending to the channel's buffer, persisting the row and
waking waiting subscribers happen in one synchronous step on the event loop, so
concurrent publishers can never make a subscriber miss or reorder a message.

Rows reach SQLite write-behind: once the database batches its commits, ``append`` queues
the row and the database writes the queue with one ``executemany`` right before it
commits, or before any statement naming ``messages`` runs (history, prune, a reload), so
a row is on disk exactly when it would have been committed anyway.

Unstored messages (``store=0``) are on disk only so a subscriber can catch up after a
restart, and a restart reloads just the newest ``buffer_size`` rows of a channel. On the
channels :meth:`MessageLog.defer_unstored_writes` names (the backend names its stream
channels, whose frames are most of its traffic), such messages are written in bulk every
:data:`UNSTORED_FLUSH_SECONDS` (and at eviction and close), and only those still among
their channel's newest ``buffer_size``: a fast stream writes a fraction of its frames. A
crash may lose the last seconds of those. Every other row is committed before the publish
is answered or the message delivered (``blocks_devnet.commit_gate``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from blocks_devnet.realtime.envelope import MESSAGE as MESSAGE  # re-exported with the others
from blocks_devnet.realtime.envelope import (
    build_envelope,
    encode_envelope,
    json_string,
    where_json,
)
from blocks_devnet.realtime.timetoken import TimetokenClock
from blocks_devnet.store.database import _MESSAGES_SCHEMA as _MESSAGES_TABLE_SQL
from blocks_devnet.store.database import Database, RowQueue

logger = logging.getLogger(__name__)

#: Message types (the envelope's ``e``; ``MESSAGE`` is 0).
SIGNAL = 1
FILE = 4

#: Messages kept per channel for subscribe catch-up (PubNub keeps about 100).
DEFAULT_BUFFER_SIZE = 1000
#: Largest number of messages in one subscribe response (PubNub's cap).
MAX_MESSAGES_PER_RESPONSE = 100
#: A channel log nobody read, wrote or waited on for this long leaves memory; its next use
#: reloads it from SQLite (thousands of finished task channels would otherwise stay forever;
#: at 250 tasks/s, 300 s of them grew the network towards 1 GB).
IDLE_LOG_SECONDS = 60.0
#: Channel logs kept in memory at most (the least recently used go first): at a sustained
#: few hundred tasks/s, 60 s of task channels alone held hundreds of MB.
MAX_LOGS_IN_MEMORY = 10_000
#: How long unstored (``store=0``) rows may wait in memory before they are written.
UNSTORED_FLUSH_SECONDS = 5.0
#: Rows a timed flush writes per event-loop turn (~16 KB stream frames: a few ms).
UNSTORED_ROWS_PER_TURN = 32

#: The columns every layout has (the rowid migration copies these).
_COLUMNS = (
    "subscribe_key, channel, timetoken, publisher, message,"
    " meta, message_type, custom_message_type, stored, expires_at"
)
#: The publish's ``seqn`` (NULL when it sent none), added after the rowid layout.
_SEQN_COLUMN = "ALTER TABLE messages ADD COLUMN seqn INTEGER"
# A channel's messages by time; unstored rows (pruned after a while) and rows with a TTL
# by time too, so each sweep reads only what it deletes.
_INDEXES = """
CREATE INDEX IF NOT EXISTS messages_by_channel ON messages (channel, timetoken);
CREATE INDEX IF NOT EXISTS messages_unstored ON messages (timetoken) WHERE stored = 0;
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (expires_at)
    WHERE expires_at IS NOT NULL;
"""
#: The table's name while a data dir from before the rowid layout is migrated.
_OLD_TABLE = "messages_before_rowid"

_INSERT_SQL = f"INSERT INTO messages ({_COLUMNS}, seqn) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
_DISCARD_SQL = "DELETE FROM messages WHERE timetoken=? AND stored=0"
_Row = tuple[str, str, int, str, str, str | None, int, str | None, int, int | None, int | None]


@dataclass(slots=True)
class LoggedMessage:
    timetoken: int
    channel: str
    publisher: str
    meta: Any
    #: The subscribe envelope, serialized once and shared by every subscriber.
    envelope: str


class _ChannelLog:
    __slots__ = ("entries", "last_used", "waiters", "where_json")

    def __init__(self, entries: list[LoggedMessage], now: float, where_json: str) -> None:
        self.entries = entries
        self.waiters: set[asyncio.Future[None]] = set()
        self.last_used = now
        self.where_json = where_json


PublishObserver = Callable[[str, str, int, Any, Any, str], None]


class MessageLog:
    """All channel logs of all keysets, backed by the ``messages`` table."""

    def __init__(
        self,
        db: Database,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        max_logs: int = MAX_LOGS_IN_MEMORY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._buffer_size = buffer_size
        self._max_logs = max_logs
        self._monotonic = monotonic
        _migrate_to_rowid_layout(db)
        _add_seqn_column(db)
        db.ensure_schema(_INDEXES)
        row = db.query_one("SELECT MAX(timetoken) AS tt FROM messages")
        self.clock = TimetokenClock(int(row["tt"] or 0) if row is not None else 0)
        # Least recently used first: every use moves a log to the end.
        self._logs: dict[tuple[str, str], _ChannelLog] = {}
        self._observers: list[PublishObserver] = []
        self._closed = False
        # Unstored rows not yet written, per channel; older ones fall off (never reloaded).
        self._unstored: dict[tuple[str, str], deque[_Row]] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._defers: Callable[[str], bool] = _never
        # Rows a timed flush is still writing, a batch per loop turn.
        self._flushing: list[_Row] = []
        # Rows waiting for the database's next commit (write-behind).
        self._queued = RowQueue(db, "messages", _INSERT_SQL)
        # Unstored rows to delete with the next commit (registered after the inserts, so
        # they are written first).
        self._discarded = RowQueue(db, "messages", _DISCARD_SQL)

    def add_observer(self, observer: PublishObserver) -> None:
        """Call ``observer(subscribe_key, channel, tt, message, meta, publisher)`` after
        every publish (presence events excluded). Observers must not block."""
        self._observers.append(observer)

    def _log(self, subscribe_key: str, channel: str) -> _ChannelLog:
        key = (subscribe_key, channel)
        now = self._monotonic()
        logs = self._logs
        log = logs.pop(key, None)
        if log is None:
            where = where_json(subscribe_key, channel)
            log = _ChannelLog(self._load(subscribe_key, channel), now, where)
        else:
            log.last_used = now
        logs[key] = log
        return log

    def start_channel(self, subscribe_key: str, channel: str) -> None:
        """Begin an empty, in-memory log for a channel whose name was just made up (a new
        task's channel): nothing can be on disk for it, so its first use skips the reload
        query. Does nothing when the channel's log is already in memory."""
        key = (subscribe_key, channel)
        if key not in self._logs:
            where = where_json(subscribe_key, channel)
            self._logs[key] = _ChannelLog([], self._monotonic(), where)

    def _load(self, subscribe_key: str, channel: str) -> list[LoggedMessage]:
        """Refill a buffer from disk, so an old cursor catches up after a restart."""
        rows = self._db.query(  # names the table: queued rows are written first
            "SELECT timetoken, publisher, message, meta, message_type, custom_message_type, seqn"
            " FROM messages WHERE subscribe_key=? AND channel=?"
            " ORDER BY timetoken DESC LIMIT ?",
            (subscribe_key, channel, self._buffer_size),
        )
        entries = []
        for row in reversed(rows):
            meta_json = row["meta"]
            entries.append(
                LoggedMessage(
                    timetoken=row["timetoken"],
                    channel=channel,
                    publisher=row["publisher"],
                    meta=json.loads(meta_json) if meta_json else None,
                    envelope=build_envelope(
                        subscribe_key=subscribe_key,
                        channel=channel,
                        timetoken=row["timetoken"],
                        publisher=row["publisher"],
                        message_json=row["message"],
                        meta_json=meta_json,
                        message_type=row["message_type"],
                        custom_message_type=row["custom_message_type"],
                        seqn=row["seqn"],
                    ),
                )
            )
        return entries

    def append(
        self,
        *,
        subscribe_key: str,
        channel: str,
        publisher: str,
        message: Any,
        message_json: str,
        meta: Any = None,
        message_type: int = MESSAGE,
        custom_message_type: str | None = None,
        store: bool = True,
        ttl_hours: int | None = None,
        seqn: int | None = None,
        presence: bool = False,
    ) -> int:
        """Assign a timetoken, append, persist and wake subscribers; returns the timetoken.

        ``store`` marks the row for history; ``presence=True`` (a presence event) keeps the
        message in memory only, in a presence envelope. ``message`` is the decoded form of
        ``message_json``; ``seqn`` is the publish's sequence number, if it sent one.
        """
        log = self._log(subscribe_key, channel)
        timetoken = self.clock.next()
        meta_json = json.dumps(meta, separators=(",", ":")) if meta is not None else None
        envelope = encode_envelope(
            json_string(publisher),
            timetoken,
            log.where_json,
            message_json,
            meta_json,
            message_type,
            custom_message_type,
            seqn=seqn,
            presence_channel=channel if presence else None,
        )
        persist = not presence
        if persist:
            expires_at = timetoken + ttl_hours * 3600 * 10_000_000 if ttl_hours else None
            row: _Row = (
                subscribe_key,
                channel,
                timetoken,
                publisher,
                message_json,
                meta_json,
                message_type,
                custom_message_type,
                1 if store else 0,
                expires_at,
                seqn,
            )
            if store or message_type != MESSAGE or not self._defer_unstored(row):
                self._queue(row)
        log.entries.append(LoggedMessage(timetoken, channel, publisher, meta, envelope))
        if len(log.entries) > 2 * self._buffer_size:
            # Amortised trim keeps bisect on a plain list cheap.
            del log.entries[: len(log.entries) - self._buffer_size]
        self._wake(log)
        if persist:
            for observer in self._observers:
                try:
                    observer(subscribe_key, channel, timetoken, message, meta, publisher)
                except Exception:
                    logger.exception("publish observer failed for channel %s", channel)
        return timetoken

    def _queue(self, row: _Row) -> None:
        """Write ``row`` with the database's next commit (at once after :meth:`close`)."""
        if self._closed:
            self._db.execute(_INSERT_SQL, row)
        else:
            self._queued.add(row)

    def discard_unstored_row(self, timetoken: int) -> None:
        """Take an unstored message's row off the disk (or out of the write-behind queue)
        with the next commit; it stays in its channel's in-memory buffer."""
        queued = len(self._queued)
        self._queued.drop(lambda row: row[2] == timetoken)
        if len(self._queued) == queued:
            self._discarded.add((timetoken,))

    def defer_unstored_writes(self, channels: Callable[[str], bool]) -> None:
        """Write unstored messages of the channels ``channels(name)`` accepts in bulk
        (see the module doc); others are written at once."""
        self._defers = channels

    def defers_unstored(self, channel: str) -> bool:
        """Whether unstored messages on ``channel`` are written in bulk."""
        return self._defers(channel)

    def _defer_unstored(self, row: _Row) -> bool:
        """Queue an unstored row for the next bulk write; False if its channel is not
        deferred or no loop runs (then the caller writes it now)."""
        if self._closed or not self._defers(row[1]):
            return False
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
            self._flush_handle = loop.call_later(UNSTORED_FLUSH_SECONDS, self._flush_in_steps)
        key = (row[0], row[1])
        pending = self._unstored.get(key)
        if pending is None:
            pending = self._unstored[key] = deque(maxlen=self._buffer_size)
        pending.append(row)
        return True

    def flush_unstored(self) -> int:
        """Write the queued unstored rows now; returns how many were written."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        rows = self._take_unstored()
        if rows:
            self._db.executemany(_INSERT_SQL, rows)
        return len(rows)

    def _take_unstored(self) -> list[_Row]:
        pending, self._unstored = self._unstored, {}
        rows, self._flushing = self._flushing, []
        rows.extend(row for queue in pending.values() for row in queue)
        return rows

    def _flush_in_steps(self) -> None:
        """The timer's flush: a bounded batch per loop turn, so a burst of large frames
        never holds the loop (and every subscriber) for long."""
        self._flush_handle = None
        self._flushing = self._take_unstored()
        self._write_step()

    def _write_step(self) -> None:
        batch = self._flushing[:UNSTORED_ROWS_PER_TURN]
        del self._flushing[:UNSTORED_ROWS_PER_TURN]
        if batch:
            self._db.executemany(_INSERT_SQL, batch)
        if self._flushing:
            asyncio.get_running_loop().call_soon(self._write_step)

    @staticmethod
    def _wake(log: _ChannelLog) -> None:
        if not log.waiters:
            return
        waiters, log.waiters = log.waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def collect(
        self,
        subscribe_key: str,
        channels: Iterable[str],
        after: int,
        accept: Callable[[LoggedMessage], bool] | None = None,
        limit: int = MAX_MESSAGES_PER_RESPONSE,
    ) -> tuple[list[LoggedMessage], bool]:
        """Messages newer than ``after`` on ``channels``, oldest first.

        Returns ``(messages, truncated)``; when truncated, the caller's next cursor must be
        the last message's timetoken so nothing is skipped.
        """
        found: list[LoggedMessage] = []
        for channel in channels:
            entries = self._log(subscribe_key, channel).entries
            start = bisect_right(entries, after, key=_timetoken_of)
            for entry in entries[start:]:
                if accept is None or accept(entry):
                    found.append(entry)
        if len(found) > 1:
            found.sort(key=_timetoken_of)
        if len(found) > limit:
            return found[:limit], True
        return found, False

    def wait(self, subscribe_key: str, channels: Iterable[str]) -> asyncio.Future[None]:
        """A future completed by the next append on any of ``channels`` (or by close)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            waiter.set_result(None)
            return waiter
        for channel in channels:
            self._log(subscribe_key, channel).waiters.add(waiter)
        return waiter

    def forget_waiter(
        self, subscribe_key: str, channels: Iterable[str], waiter: asyncio.Future[None]
    ) -> None:
        for channel in channels:
            log = self._logs.get((subscribe_key, channel))
            if log is not None:
                log.waiters.discard(waiter)

    def evict_idle(self, idle_seconds: float = IDLE_LOG_SECONDS) -> int:
        """Drop the logs no one waits on that went unused for ``idle_seconds``, and the
        least recently used beyond ``max_logs``; returns how many went.

        A dropped log's persisted messages come back from SQLite on its next use; its
        memory-only entries (presence events) are gone, as after a restart.
        """
        self.flush_unstored()
        logs = self._logs
        horizon = self._monotonic() - idle_seconds
        gone: list[tuple[str, str]] = []
        for key, log in logs.items():  # least recently used first
            if len(logs) - len(gone) <= self._max_logs and log.last_used >= horizon:
                break
            if not log.waiters:
                gone.append(key)
        for key in gone:
            del logs[key]
        return len(gone)

    def __len__(self) -> int:
        """Channel logs in memory."""
        return len(self._logs)

    def prune(self, older_than: int) -> int:
        """Drop unstored (buffer-only) and expired rows older than ``older_than``, all of
        them now (tests; the server sweeps in batches: :meth:`sweep_unstored`,
        :meth:`sweep_expired`)."""
        removed = 0
        for sweep in (lambda n: self.sweep_unstored(older_than, n), self.sweep_expired):
            while (count := sweep(_PRUNE_ALL_BATCH)) > 0:
                removed += count
        return removed

    def sweep_unstored(self, older_than: int, limit: int) -> int:
        """Delete at most ``limit`` unstored rows older than ``older_than`` (a timetoken)."""
        return self._delete_batch("stored = 0 AND timetoken < ?", (older_than,), limit)

    def sweep_expired(self, limit: int) -> int:
        """Delete at most ``limit`` rows whose TTL (``expires_at``) has passed."""
        return self._delete_batch(
            "expires_at IS NOT NULL AND expires_at < ?", (self.clock.head(),), limit
        )

    def sweep_older_than(self, older_than: int, limit: int) -> int:
        """Delete at most ``limit`` rows of any kind older than ``older_than`` (retention)."""
        return self._delete_batch("timetoken < ?", (older_than,), limit)

    def _delete_batch(self, where: str, params: tuple[object, ...], limit: int) -> int:
        cursor = self._db.execute(  # names the table: queued rows are written first
            f"DELETE FROM messages WHERE timetoken IN"
            f" (SELECT timetoken FROM messages WHERE {where} ORDER BY timetoken LIMIT ?)",
            (*params, limit),
        )
        return cursor.rowcount

    def close(self) -> None:
        """Write every queued row and release every waiting subscriber (they answer with
        what they have)."""
        self._queued.flush()
        self._discarded.flush()
        self.flush_unstored()
        self._closed = True
        for log in self._logs.values():
            self._wake(log)


#: Batch size of :meth:`MessageLog.prune` (which deletes everything at once anyway).
_PRUNE_ALL_BATCH = 10_000


def _migrate_to_rowid_layout(db: Database) -> None:
    """Move a data dir's messages from the layout before the rowid one (a WITHOUT ROWID
    table keyed by keyset, channel and timetoken) into the current table, once.

    In that layout a row over ~1 KB (a StartTask with its tokens) took a whole 4 KB
    overflow page, and random channel keys left pages half full: ~7 KB of messages per echo
    task against ~3 KB now. The copy runs at start, in one transaction, before serving.
    """
    row = db.query_one("SELECT sql FROM sqlite_master WHERE type='table' AND name='messages'")
    if row is None or "WITHOUT ROWID" not in str(row["sql"]).upper():
        return
    logger.info("migrating the messages table to the rowid layout (once; may take a while)")
    with db.transaction():
        db.execute(f"ALTER TABLE messages RENAME TO {_OLD_TABLE}")
        for statement in _MESSAGES_TABLE_SQL.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            f"INSERT OR IGNORE INTO messages ({_COLUMNS})"
            f" SELECT {_COLUMNS} FROM {_OLD_TABLE} ORDER BY timetoken"
        )
        db.execute(f"DROP TABLE {_OLD_TABLE}")


def _add_seqn_column(db: Database) -> None:
    """Give a data dir's messages table the ``seqn`` column, once (a cheap schema change)."""
    columns = {row["name"] for row in db.query("PRAGMA table_info(messages)")}
    if "seqn" not in columns:
        db.execute(_SEQN_COLUMN)


def _never(channel: str) -> bool:
    return False


def _timetoken_of(entry: LoggedMessage) -> int:
    return entry.timetoken
