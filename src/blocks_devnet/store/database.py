"""The local network's SQLite database: one file, WAL mode, shared by every component.

The database is owned by the server's event-loop thread. Statements are short and run
inline (autocommit, ``synchronous=NORMAL``), which keeps each write an atomic step of
the loop; nothing here is safe to call from another thread.

Once the server batches its commits (:meth:`Database.batch_commits`), the writes of one
event-loop turn share one commit, run at the end of that turn (group commit, no timer).
Nothing a client is told may run ahead of it: :meth:`Database.after_commit` and
:meth:`Database.durable` wait for the commit that covers every write made so far.

A component may also queue rows for one table and write them in bulk (write-behind, see
:meth:`Database.add_write_behind`): they are written right before every commit, and
before any statement that names the table runs, so no reader here ever misses one.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

#: How often the background checkpointer copies the WAL into the database file.
CHECKPOINT_INTERVAL_SECONDS = 1.0
_CHECKPOINT_JOIN_TIMEOUT_S = 5.0

# Each component adds its own tables through ``Database.ensure_schema``; the realtime
# message log is created here because everything else depends on it.
_MESSAGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    subscribe_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    timetoken INTEGER NOT NULL,
    publisher TEXT NOT NULL,
    message TEXT NOT NULL,
    meta TEXT,
    message_type INTEGER NOT NULL,
    custom_message_type TEXT,
    stored INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (subscribe_key, channel, timetoken)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_tt ON messages (stored, timetoken);
"""


class Database:
    """A thin wrapper over one ``sqlite3`` connection in WAL mode.

    ``path=None`` keeps everything in memory (for unit tests that need no restart).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the server creates it on the caller's thread and then
        # uses it only from its loop thread.
        self._conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commit_scheduled = False
        self._commit_interval_s = 0.0
        # Called once the open batch is committed (or failed): see after_commit.
        self._on_commit: list[Callable[[BaseException | None], None]] = []
        #: Batch commits made so far (a measure of how well writes are grouped).
        self.commits = 0
        # (table, flush) of each write-behind queue; see add_write_behind.
        self._write_behind: list[tuple[str, Callable[[], None]]] = []
        self._flushing = False
        self._units = 0
        self._checkpointer: _Checkpointer | None = None
        self.ensure_schema(_MESSAGES_SCHEMA)

    def batch_commits(self, loop: asyncio.AbstractEventLoop, interval_s: float = 0.0) -> None:
        """Group the writes of each event-loop turn into one commit, run at the end of the
        turn; called on ``loop``.

        A commit is the expensive part of a small write; a busy server makes dozens per
        turn. Each write is visible at once to every later statement (one connection);
        other connections see it at the commit, and a client is answered after it (see
        :meth:`after_commit`). ``interval_s`` holds each batch open that long instead:
        tests use it to look at uncommitted state; the server never does.
        """
        self._loop = loop
        self._commit_interval_s = max(0.0, interval_s)

    def checkpoint_in_background(self, interval_s: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        """Copy the WAL into the database file from a thread of its own (``blocks-devnet-
        checkpoint``, every ``interval_s``) instead of inside a commit on the loop: an
        automatic checkpoint held the loop (and every client) for 10-20 ms every second or
        two under load. Nothing for an in-memory database; stopped by :meth:`close`."""
        if self.path is None or self._checkpointer is not None or self._closed:
            return
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = _Checkpointer(self.path, interval_s)
        self._checkpointer.start()

    @property
    def uncommitted(self) -> bool:
        """Whether writes made so far wait for a commit (only ever with batching)."""
        return self._loop is not None and not self._closed and self._conn.in_transaction

    def after_commit(self, callback: Callable[[BaseException | None], None]) -> bool:
        """Call ``callback(None)`` right after the commit that covers every write made so
        far, or ``callback(error)`` if that batch was rolled back instead; returns False
        (and never calls it) when nothing waits for a commit.

        Whatever is computed from the database now (an answer, a message to deliver) may
        leave the process in ``callback``: a crash after that no longer takes it back.
        """
        if not self.uncommitted:
            return False
        self._on_commit.append(callback)
        return True

    def durable(self) -> asyncio.Future[None]:
        """A future done once every write made so far is committed (at once if nothing
        waits); it fails with the database's error if the batch was rolled back."""
        loop = self._loop or asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        if not self.after_commit(settle):
            done.set_result(None)
        return done

    @property
    def batching(self) -> bool:
        """Whether writes are grouped into batched commits (:meth:`batch_commits` ran)."""
        return self._loop is not None

    def add_write_behind(self, table: str, flush: Callable[[], None]) -> None:
        """Register ``flush()``, which writes the rows a component queued for ``table``.

        The database calls it right before every commit (so queued rows are committed, and
        lost in a crash, exactly like the batch's other writes) and before running any
        statement whose text names ``table`` (so every reader sees them); statements run by
        a ``flush`` write no queue. ``flush`` should take its queue before writing it, so
        a failed write is not retried for ever. A queue that gets its first row calls
        :meth:`open_batch`, so a commit is due.
        """
        self._write_behind.append((table, flush))

    def open_batch(self) -> None:
        """Open the batch (and schedule its commit) if none is open; nothing without
        batching."""
        self._begin_batch()

    @property
    def in_unit(self) -> bool:
        """Whether a :meth:`transaction` unit is open: components write at once then, so a
        rolled-back unit takes their rows with it and nothing queued outside it."""
        return self._units > 0

    def flush_queued(self) -> None:
        """Write every write-behind queue now (each failure is logged; its rows are lost)."""
        for _table, flush in self._write_behind:
            self._run_flush(flush)

    def _flush_for(self, sql: str) -> None:
        for table, flush in self._write_behind:
            if table in sql:
                self._run_flush(flush)

    def _run_flush(self, flush: Callable[[], None]) -> None:
        if self._flushing:
            return  # a queue's own statements
        self._flushing = True
        try:
            flush()
        except Exception:
            # The queue was taken before the write: its rows are lost, the rest goes on.
            logger.exception("writing queued rows failed; they are lost")
        finally:
            self._flushing = False

    def ensure_schema(self, script: str) -> None:
        """Run idempotent ``CREATE ... IF NOT EXISTS`` statements."""
        self.commit()
        self._conn.executescript(script)

    def execute(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        if self._write_behind:
            self._flush_for(sql)
        self._begin_batch()
        return self._conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Iterable[object]]) -> sqlite3.Cursor:
        if self._write_behind:
            self._flush_for(sql)
        self._begin_batch()
        return self._conn.executemany(sql, (tuple(r) for r in rows))

    def _begin_batch(self) -> None:
        if self._loop is None or self._conn.in_transaction:
            return
        self._conn.execute("BEGIN")
        if not self._commit_scheduled:
            self._schedule_commit()

    def _schedule_commit(self) -> None:
        assert self._loop is not None
        self._commit_scheduled = True
        if self._commit_interval_s > 0:
            self._loop.call_later(self._commit_interval_s, self._commit_batch)
        else:
            self._loop.call_soon(self._commit_batch)

    def _commit_batch(self) -> None:
        self._commit_scheduled = False
        try:
            self.commit()
        except Exception:
            logger.exception("committing a batch of writes failed")
        finally:
            if not self._closed and self._conn.in_transaction and not self._commit_scheduled:
                # Still open: schedule another try, or no later write would ever commit.
                self._schedule_commit()

    def commit(self) -> None:
        """Write the queued rows and commit the open batch now, if there is one; then tell
        everyone waiting for it (see :meth:`after_commit`)."""
        if self._closed:
            return
        if self._write_behind:
            self.flush_queued()
        if self._conn.in_transaction:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if not self._conn.in_transaction:
                    self._settle(exc)  # rolled back: its writes are gone
                raise
            self.commits += 1
        self._settle(None)

    def _settle(self, error: BaseException | None) -> None:
        waiting, self._on_commit = self._on_commit, []
        for callback in waiting:
            try:
                callback(error)
            except Exception:
                logger.exception("a commit callback failed")

    def query(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        if self._write_behind:
            self._flush_for(sql)
        return self._conn.execute(sql, tuple(params)).fetchall()

    def query_one(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Row | None:
        if self._write_behind:
            self._flush_for(sql)
        row: sqlite3.Row | None = self._conn.execute(sql, tuple(params)).fetchone()
        return row

    def transaction(self) -> _Transaction:
        """``with db.transaction():`` groups statements so nothing half-written is kept."""
        # Rows queued so far are written first, outside the unit: a rollback must not take
        # them. With batching, a unit is then a savepoint of the batch.
        if self._write_behind:
            self.flush_queued()
        self._begin_batch()
        return _Transaction(self)

    def close(self) -> None:
        """Commit pending writes and close the connection; a second call does nothing."""
        if self._closed:
            return
        try:
            self.commit()
        except sqlite3.Error:
            logger.exception("committing pending writes at close failed")
        if self._on_commit:
            self._settle(sqlite3.OperationalError("the database closed before the commit"))
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.stop()
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            logger.debug("checkpoint at close failed", exc_info=True)
        self._conn.close()


class _Checkpointer:
    """A daemon thread running passive WAL checkpoints on a connection of its own."""

    def __init__(self, path: Path, interval_s: float) -> None:
        self._path = path
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="blocks-devnet-checkpoint", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_CHECKPOINT_JOIN_TIMEOUT_S)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self._path), isolation_level=None)
        except sqlite3.Error:
            logger.exception("cannot open the database for background checkpoints")
            return
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    # PASSIVE: copies what it can, never waits for (or blocks) the writer.
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    logger.debug("background checkpoint failed", exc_info=True)
        finally:
            conn.close()


class _Transaction:
    """All or nothing; inside an open batch it is a savepoint of that batch."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn = db._conn
        self._savepoint = False

    def __enter__(self) -> None:
        self._savepoint = self._conn.in_transaction
        self._conn.execute("SAVEPOINT unit" if self._savepoint else "BEGIN IMMEDIATE")
        self._db._units += 1

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db._units -= 1
        if self._savepoint:
            if exc_type is not None:
                self._conn.execute("ROLLBACK TO unit")
            self._conn.execute("RELEASE unit")
        elif exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")


class RowQueue:
    """Rows for one ``INSERT`` statement, written with the database's next commit (a
    write-behind queue, see :meth:`Database.add_write_behind`); without batched commits
    each row is written at once."""

    def __init__(self, db: Database, table: str, insert_sql: str) -> None:
        self._db = db
        self._sql = insert_sql
        self._rows: list[Sequence[object]] = []
        db.add_write_behind(table, self.flush)

    def __len__(self) -> int:
        """Rows waiting for the commit."""
        return len(self._rows)

    def add(self, row: Sequence[object]) -> None:
        if not self._db.batching or self._db.in_unit:
            self._db.execute(self._sql, row)
            return
        if not self._rows:
            self._db.open_batch()  # the commit that will write the queue
        self._rows.append(row)

    def drop(self, unwanted: Callable[[Sequence[object]], bool]) -> None:
        """Forget the queued rows ``unwanted(row)`` accepts (they need not be written)."""
        if self._rows:
            self._rows = [row for row in self._rows if not unwanted(row)]

    def flush(self) -> None:
        """Write the queued rows in one statement (the database's write-behind hook)."""
        rows, self._rows = self._rows, []
        if rows:
            self._db.executemany(self._sql, rows)
