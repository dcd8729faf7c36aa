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
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

#: How often the background checkpointer copies the WAL into the database file.
CHECKPOINT_INTERVAL_SECONDS = 1.0
#: A WAL file larger than this is restarted (rewritten from its start) and cut back to
#: this size: passive checkpoints alone never let it restart while the network is busy.
DEFAULT_WAL_LIMIT_BYTES = 64 * 1024 * 1024
#: How long a restarting checkpoint on the thread waits for readers and writers (only
#: without batched commits: with them, the loop finishes the restart, see _Checkpointer).
RESTART_BUSY_TIMEOUT_SECONDS = 0.05
_CHECKPOINT_JOIN_TIMEOUT_S = 5.0

# Each component adds its own tables through ``Database.ensure_schema``; the realtime
# message log is created here because everything else depends on it (its indexes, and the
# migration from the layout before it, are the message log's: realtime/message_log.py).
# The timetoken is the rowid: one clock hands out every timetoken, so rows are appended in
# key order and pages fill up.
_MESSAGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    timetoken INTEGER PRIMARY KEY,
    subscribe_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    publisher TEXT NOT NULL,
    message TEXT NOT NULL,
    meta TEXT,
    message_type INTEGER NOT NULL,
    custom_message_type TEXT,
    stored INTEGER NOT NULL,
    expires_at INTEGER
);
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

    def checkpoint_in_background(
        self,
        interval_s: float = CHECKPOINT_INTERVAL_SECONDS,
        wal_limit_bytes: int = DEFAULT_WAL_LIMIT_BYTES,
    ) -> None:
        """Copy the WAL into the database file from a thread of its own (``blocks-devnet-
        checkpoint``, every ``interval_s``) instead of inside a commit on the loop: an
        automatic checkpoint held the loop (and every client) for 10-20 ms every second or
        two under load. Nothing for an in-memory database; stopped by :meth:`close`.

        A WAL above ``wal_limit_bytes`` is also restarted (see :class:`_Checkpointer`) and
        cut back to that size by the loop's next commit (``journal_size_limit``).
        """
        if self.path is None or self._checkpointer is not None or self._closed:
            return
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")
        self._checkpointer = _Checkpointer(
            self.path, interval_s, wal_limit_bytes, self._ask_loop_to_copy_wal_tail
        )
        self._checkpointer.start()

    def _ask_loop_to_copy_wal_tail(self) -> bool:
        """(From the checkpoint thread) schedule :meth:`_copy_wal_tail` on the loop; False
        without batched commits (no loop to ask)."""
        loop, checkpointer = self._loop, self._checkpointer
        if loop is None or checkpointer is None or self._closed:
            return False
        if checkpointer.tail_asked:
            return True  # the loop has not got to the last request yet: one is enough
        checkpointer.tail_asked = True
        with contextlib.suppress(RuntimeError):  # the loop closed: the database is closing
            loop.call_soon_threadsafe(self._copy_wal_tail)
        return True

    def _copy_wal_tail(self) -> None:
        """On the loop, when the thread found the WAL too large and has just copied it:
        commit the open batch and copy the few frames written since, so the loop's next
        write transaction starts with every frame copied and starts the WAL over."""
        if self._checkpointer is not None:
            self._checkpointer.tail_asked = False
        if self._closed:
            return
        began = time.perf_counter()
        try:
            self.commit()
            committed = time.perf_counter()
            busy, log, _copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            logger.debug("copying the WAL's tail failed", exc_info=True)
            return
        logger.debug(
            "WAL tail copied on the loop: commit %.1f ms, copy %.1f ms (busy %d, %d frames)",
            (committed - began) * 1000,
            (time.perf_counter() - committed) * 1000,
            busy,
            log,
        )

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
    """A daemon thread running WAL checkpoints on a connection of its own.

    Every interval: a passive checkpoint, which copies what it can and never waits for (or
    blocks) the loop. That alone never lets the WAL start over under load: the loop's
    connection restarts it only when one of its write transactions begins with every frame
    copied, and its own last commit always left some (12 GB of WAL in 10 minutes). So when
    the file passes the limit, the thread (right after its passive copy) asks the loop to
    commit and copy the frames written since, a few milliseconds' worth: its next write
    then starts the WAL over. A RESTART checkpoint here instead held the write lock while
    the loop's batch held a read snapshot: each side waited for the other until the busy
    timeout (60 ms stalls, and the restart still failed). Without batched commits (no
    loop), the thread runs the RESTART checkpoint itself.
    """

    def __init__(
        self,
        path: Path,
        interval_s: float,
        wal_limit_bytes: int,
        ask_loop: Callable[[], bool],
    ) -> None:
        self._path = path
        self._wal_path = path.with_name(path.name + "-wal")
        self._interval_s = interval_s
        self._wal_limit_bytes = wal_limit_bytes
        self._ask_loop = ask_loop
        #: Set when the loop was asked to copy the WAL's tail, cleared when it does.
        self.tail_asked = False
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
            conn = sqlite3.connect(
                str(self._path), isolation_level=None, timeout=RESTART_BUSY_TIMEOUT_SECONDS
            )
        except sqlite3.Error:
            logger.exception("cannot open the database for background checkpoints")
            return
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    self._tick(conn)
                except sqlite3.Error:
                    logger.debug("background checkpoint failed", exc_info=True)
        finally:
            conn.close()

    def _tick(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if self._wal_bytes() <= self._wal_limit_bytes:
            return
        if not self._ask_loop():
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    def _wal_bytes(self) -> int:
        try:
            return self._wal_path.stat().st_size
        except OSError:
            return 0


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
