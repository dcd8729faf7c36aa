"""Files of the local network: pending uploads, stored files and signed download links.

One store serves both the PubNub Files API (``send_file`` → generate-upload-url, upload,
publish-file) and the Blocks backend's presigned uploads (protocol.md §5.6), so a file
uploaded either way is downloaded with the official client's ``download_file``.

An upload has two steps: :meth:`FileStore.create_upload` records a *pending upload* (the
equivalent of an S3 presigned POST: a random, expiring, single-use id with a size limit),
and :meth:`FileStore.complete_upload` stores the bytes and the file in one transaction, so a
file is either wholly stored or absent.

Like :class:`~blocks_devnet.store.database.Database`, a store is used from the server's
event-loop thread only; every method runs a few short SQLite statements and returns.

Exceptions (all rooted at :class:`FileStoreError`)::

    FileStoreError
    ├── InvalidFileName        (also a ValueError)
    ├── UploadNotFound
    ├── UploadExpired
    ├── UploadAlreadyCompleted
    ├── FileTooLarge
    └── FileSizeMismatch
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import mimetypes
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from blocks_devnet.store.cursor import decode_cursor, encode_cursor
from blocks_devnet.store.database import Database

logger = logging.getLogger(__name__)

#: A pending upload is usable this long unless the caller says otherwise.
DEFAULT_UPLOAD_TTL_SECONDS = 3600
#: A signed download link (the 307's ``Location``) is valid this long.
DOWNLOAD_URL_TTL_SECONDS = 3600
#: File names are limited like S3 object key segments and common file systems.
MAX_FILE_NAME_BYTES = 255
#: ``list_files`` page size: PubNub's default and maximum.
MAX_LIST_LIMIT = 100
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: Path tricks, and characters that cut a name short in the client's unencoded URL path.
_FORBIDDEN_IN_NAMES = ("/", "\\", "..", "?", "#")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    subscribe_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    blob BLOB NOT NULL,
    PRIMARY KEY (subscribe_key, channel, id)
);
CREATE INDEX IF NOT EXISTS files_by_created ON files (subscribe_key, channel, created_ms, id);
CREATE TABLE IF NOT EXISTS file_uploads (
    upload_id TEXT PRIMARY KEY,
    subscribe_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    file_id TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    max_bytes INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    metadata TEXT NOT NULL,
    completed_at REAL,
    expected_bytes INTEGER
);
"""


class FileStoreError(Exception):
    """Root of the file store's refusals; each subclass says what the caller should do."""


class InvalidFileName(FileStoreError, ValueError):
    """A file name that could escape a directory or cannot travel in a URL path."""


class UploadNotFound(FileStoreError):
    """No pending upload has this id (never created, or its file was deleted)."""


class UploadExpired(FileStoreError):
    """The pending upload's time ran out before the bytes arrived."""


class UploadAlreadyCompleted(FileStoreError):
    """The pending upload was used already; each upload stores exactly one file."""


class FileTooLarge(FileStoreError):
    """The uploaded bytes exceed the pending upload's limit; nothing was stored."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"EntityTooLarge: the file is larger than the {max_bytes} bytes this upload allows;"
            " send a smaller file"
        )
        self.max_bytes = max_bytes


class FileSizeMismatch(FileStoreError):
    """The uploaded bytes are not the size the upload declared; nothing was stored.

    A multipart body cut short at a line that looked like its boundary still parses, so the
    declared size is what tells a whole file from a cut one (S3's ``content-length-range``).
    """

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(
            f"IncompleteBody: received {received} bytes but this upload declared {expected}"
            " (fileSize); nothing was stored: POST the whole file again"
        )
        self.expected = expected
        self.received = received


@dataclass(frozen=True)
class PendingUpload:
    """A presigned upload: POST the bytes to ``/v1/files/upload/{upload_id}`` before
    ``expires_at`` (Unix seconds). ``metadata`` is the creator's own JSON object (the Blocks
    backend keeps e.g. ``{"role": ..., "taskId": ...}`` there). ``expected_bytes``, when
    set, is the exact size the uploader declared; any other size is refused."""

    upload_id: str
    subscribe_key: str
    channel: str
    file_id: str
    name: str
    content_type: str
    max_bytes: int
    expires_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    completed_at: float | None = None
    expected_bytes: int | None = None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None

    @property
    def path(self) -> str:
        """The upload target's path on this server (the id is the capability)."""
        return f"/v1/files/upload/{self.upload_id}"

    @property
    def object_key(self) -> str:
        """The ``key`` form field (as S3 names the object); checked when sent back."""
        return f"{self.file_id}/{self.name}"

    @property
    def form_fields(self) -> list[dict[str, str]]:
        """The multipart fields to send, in order, before the ``file`` part."""
        return [
            {"key": "key", "value": self.object_key},
            {"key": "Content-Type", "value": self.content_type},
        ]

    @property
    def expiration_date(self) -> str:
        """``expires_at`` as the ISO-8601 UTC text PubNub's response carries."""
        return iso_utc(self.expires_at)


@dataclass(frozen=True)
class FileInfo:
    """A stored file's metadata (``created`` is Unix seconds)."""

    subscribe_key: str
    channel: str
    id: str
    name: str
    size: int
    content_type: str
    created: float


@dataclass(frozen=True)
class StoredFile:
    info: FileInfo
    data: bytes


@dataclass(frozen=True)
class FilePage:
    """One page of ``list_files``; pass ``next`` back to get the following page."""

    files: list[FileInfo]
    next: str | None


def iso_utc(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_file_name(name: object) -> str:
    """Return ``name`` if it is a safe file name, else raise :class:`InvalidFileName`.

    Refused: non-strings, empty names, more than 255 UTF-8 bytes, path separators (``/``,
    ``\\``), ``..``, control characters (NUL included), lone surrogates, and ``?``/``#``,
    which the official client puts unencoded into its download URL, cutting the name short.
    """
    if not isinstance(name, str) or not name:
        raise InvalidFileName("Invalid file name: give a non-empty string")
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_FILE_NAME_BYTES:
        raise InvalidFileName(f"Invalid file name: longer than {MAX_FILE_NAME_BYTES} UTF-8 bytes")
    problem = next((f"{bad!r} is not allowed" for bad in _FORBIDDEN_IN_NAMES if bad in name), None)
    if problem is None and any(_is_control(ch) for ch in name):
        problem = "control characters and lone surrogates are not allowed"
    if problem is not None:
        raise InvalidFileName(f"Invalid file name {name[:64]!r}: {problem}; use a plain file name")
    return name


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF


def guess_content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


# --- download links -------------------------------------------------------------------------
# The final download GET carries no auth (pubnub-wire.md §6.3), so the 307 hands out a link
# whose query authorises exactly one file until ``exp``: HMAC-SHA256 with the keyset secret.


def download_signature(
    secret_key: str, subscribe_key: str, channel: str, file_id: str, name: str, expires: int
) -> str:
    """Hex HMAC of the file's identity and expiry (hex survives any query re-encoding)."""
    text = "\n".join(("file-download", subscribe_key, channel, file_id, name, str(expires)))
    return hmac.new(
        secret_key.encode(), text.encode("utf-8", errors="surrogatepass"), hashlib.sha256
    ).hexdigest()


def check_download_signature(
    secret_key: str,
    subscribe_key: str,
    channel: str,
    file_id: str,
    name: str,
    expires: int,
    signature: str,
    now: float,
) -> str | None:
    """``None`` when the link is valid; otherwise the reason it is refused."""
    expected = download_signature(secret_key, subscribe_key, channel, file_id, name, expires)
    # Bytes: compare_digest refuses str with non-ASCII characters, and the link is user input.
    received = signature.lower().encode("utf-8", errors="surrogatepass")
    if not hmac.compare_digest(expected.encode(), received):
        return "Invalid download signature: ask the Files API for a new link (get_file_url)"
    if expires < now:
        return "Download link expired: ask the Files API for a new link (get_file_url)"
    return None


# --- the store ------------------------------------------------------------------------------


class FileStore:
    """Pending uploads and stored files of every keyset, in the shared database."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        db.ensure_schema(_SCHEMA)
        self._add_expected_bytes_column()

    def _add_expected_bytes_column(self) -> None:
        # Data directories from before declared sizes were checked lack the column.
        columns = {row["name"] for row in self._db.query("PRAGMA table_info(file_uploads)")}
        if "expected_bytes" not in columns:
            self._db.execute("ALTER TABLE file_uploads ADD COLUMN expected_bytes INTEGER")

    def now(self) -> float:
        return self._clock()

    def create_upload(
        self,
        subscribe_key: str,
        channel: str,
        name: str,
        *,
        max_bytes: int,
        ttl_seconds: float = DEFAULT_UPLOAD_TTL_SECONDS,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        expected_bytes: int | None = None,
    ) -> PendingUpload:
        """Record a pending upload of at most ``max_bytes`` bytes (exactly ``expected_bytes``
        when given), usable once before ``ttl_seconds`` pass. Raises :class:`InvalidFileName`,
        or ``ValueError`` for a non-positive limit or ttl, an ``expected_bytes`` outside
        ``0..max_bytes``, or metadata that is not a JSON object."""
        validate_file_name(name)
        if max_bytes <= 0 or ttl_seconds <= 0:
            raise ValueError("max_bytes and ttl_seconds must be positive")
        if expected_bytes is not None and not 0 <= expected_bytes <= max_bytes:
            raise ValueError("expected_bytes must be between 0 and max_bytes")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError("metadata must be a JSON object (a dict)")
        try:
            metadata_json = json.dumps(metadata or {}, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc
        now = self.now()
        self._drop_stale_uploads(now)
        upload = PendingUpload(
            upload_id=secrets.token_urlsafe(24),
            subscribe_key=subscribe_key,
            channel=channel,
            file_id=str(uuid.uuid4()),
            name=name,
            content_type=content_type or guess_content_type(name),
            max_bytes=max_bytes,
            expires_at=now + ttl_seconds,
            metadata=dict(metadata or {}),
            expected_bytes=expected_bytes,
        )
        self._db.execute(
            "INSERT INTO file_uploads (upload_id, subscribe_key, channel, file_id, name,"
            " content_type, max_bytes, expires_at, metadata, completed_at, expected_bytes)"
            " VALUES (?,?,?,?,?,?,?,?,?,NULL,?)",
            (
                upload.upload_id,
                subscribe_key,
                channel,
                upload.file_id,
                name,
                upload.content_type,
                max_bytes,
                upload.expires_at,
                metadata_json,
                expected_bytes,
            ),
        )
        logger.debug("pending upload %s for %s on %s", upload.file_id, name, channel)
        return upload

    def get_upload(self, upload_id: str) -> PendingUpload | None:
        """The pending (or completed) upload with this id, or ``None``."""
        row = self._db.query_one("SELECT * FROM file_uploads WHERE upload_id=?", (upload_id,))
        if row is None:
            return None
        return PendingUpload(
            upload_id=row["upload_id"],
            subscribe_key=row["subscribe_key"],
            channel=row["channel"],
            file_id=row["file_id"],
            name=row["name"],
            content_type=row["content_type"],
            max_bytes=row["max_bytes"],
            expires_at=row["expires_at"],
            metadata=json.loads(row["metadata"]),
            completed_at=row["completed_at"],
            expected_bytes=row["expected_bytes"],
        )

    def open_upload(self, upload_id: str) -> PendingUpload:
        """The upload if it can still receive bytes; raises :class:`UploadNotFound`,
        :class:`UploadExpired` or :class:`UploadAlreadyCompleted`."""
        upload = self.get_upload(upload_id)
        if upload is None:
            raise UploadNotFound(
                "Upload not found: request a new upload URL (generate-upload-url or request-upload)"
            )
        if upload.completed:
            raise UploadAlreadyCompleted(
                "Upload already completed: each upload URL stores one file; request a new one"
            )
        if upload.expires_at < self.now():
            raise UploadExpired("Upload URL expired: request a new one and upload again")
        return upload

    def complete_upload(self, upload_id: str, data: bytes) -> FileInfo:
        """Store ``data`` as the upload's file and mark the upload used, atomically.

        Raises what :meth:`open_upload` raises, :class:`FileTooLarge` or
        :class:`FileSizeMismatch`; then nothing is stored and the upload stays usable.
        """
        upload = self.open_upload(upload_id)
        if len(data) > upload.max_bytes:
            raise FileTooLarge(upload.max_bytes)
        if upload.expected_bytes is not None and len(data) != upload.expected_bytes:
            raise FileSizeMismatch(upload.expected_bytes, len(data))
        now = self.now()
        info = FileInfo(
            subscribe_key=upload.subscribe_key,
            channel=upload.channel,
            id=upload.file_id,
            name=upload.name,
            size=len(data),
            content_type=upload.content_type,
            created=now,
        )
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO files (subscribe_key, channel, id, name, size, content_type, created_ms, blob)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    info.subscribe_key,
                    info.channel,
                    info.id,
                    info.name,
                    info.size,
                    info.content_type,
                    int(now * 1000),
                    bytes(data),
                ),
            )
            self._db.execute(
                "UPDATE file_uploads SET completed_at=? WHERE upload_id=?", (now, upload_id)
            )
        logger.info(
            "stored file %s (%s, %d bytes) on %s", info.id, info.name, info.size, info.channel
        )
        return info

    def file_info(
        self, subscribe_key: str, channel: str, file_id: str, name: str | None = None
    ) -> FileInfo | None:
        """The file's metadata (without its bytes), or ``None``; ``name`` must match if given."""
        row = self._db.query_one(
            "SELECT subscribe_key, channel, id, name, size, content_type, created_ms FROM files"
            " WHERE subscribe_key=? AND channel=? AND id=?",
            (subscribe_key, channel, file_id),
        )
        if row is None or (name is not None and row["name"] != name):
            return None
        return _info(row)

    def get_file(
        self, subscribe_key: str, channel: str, file_id: str, name: str
    ) -> StoredFile | None:
        """The file with its bytes, or ``None`` if no file has this id *and* name."""
        row = self._db.query_one(
            "SELECT subscribe_key, channel, id, name, size, content_type, created_ms, blob FROM files"
            " WHERE subscribe_key=? AND channel=? AND id=? AND name=?",
            (subscribe_key, channel, file_id, name),
        )
        if row is None:
            return None
        return StoredFile(info=_info(row), data=bytes(row["blob"]))

    def list_files(
        self,
        subscribe_key: str,
        channel: str,
        *,
        limit: int = MAX_LIST_LIMIT,
        next: str | None = None,
    ) -> FilePage:
        """The channel's files, oldest first, ``limit`` (1..100) per page.

        Raises ``ValueError`` for a bad limit or a ``next`` this store did not hand out.
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        after_ms, after_id = decode_cursor(next, "next") if next else (-1, "")
        rows = self._db.query(
            "SELECT subscribe_key, channel, id, name, size, content_type, created_ms FROM files"
            " WHERE subscribe_key=? AND channel=? AND (created_ms > ? OR (created_ms = ? AND id > ?))"
            " ORDER BY created_ms, id LIMIT ?",
            (subscribe_key, channel, after_ms, after_ms, after_id, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1]["created_ms"], rows[-1]["id"]) if more else None
        return FilePage(files=[_info(row) for row in rows], next=cursor)

    def delete_file(self, subscribe_key: str, channel: str, file_id: str, name: str) -> bool:
        """Delete the file (and its upload record); ``False`` if there was none."""
        with self._db.transaction():
            cursor = self._db.execute(
                "DELETE FROM files WHERE subscribe_key=? AND channel=? AND id=? AND name=?",
                (subscribe_key, channel, file_id, name),
            )
            deleted = cursor.rowcount > 0
            if deleted:
                self._db.execute(
                    "DELETE FROM file_uploads WHERE subscribe_key=? AND channel=? AND file_id=?",
                    (subscribe_key, channel, file_id),
                )
        if deleted:
            logger.info("deleted file %s (%s) on %s", file_id, name, channel)
        return deleted

    def _drop_stale_uploads(self, now: float) -> None:
        # Unused expired uploads are worthless; completed ones stay for the backend's confirm.
        self._db.execute(
            "DELETE FROM file_uploads WHERE completed_at IS NULL AND expires_at < ?", (now,)
        )


def _info(row: Any) -> FileInfo:
    return FileInfo(
        subscribe_key=row["subscribe_key"],
        channel=row["channel"],
        id=row["id"],
        name=row["name"],
        size=row["size"],
        content_type=row["content_type"],
        created=row["created_ms"] / 1000,
    )
