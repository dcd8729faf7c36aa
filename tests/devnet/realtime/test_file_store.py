"""FileStore on an in-memory database with a fake clock (no server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocks_devnet.realtime.file_store import (
    FileSizeMismatch,
    FileStore,
    FileTooLarge,
    InvalidFileName,
    UploadAlreadyCompleted,
    UploadExpired,
    UploadNotFound,
    check_download_signature,
    download_signature,
    validate_file_name,
)
from blocks_devnet.store.database import Database
from tests.support.fake_clock import FakeClock

SUB = "sub-c-test"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def store(clock: FakeClock) -> Iterator[FileStore]:
    db = Database(None)
    yield FileStore(db, clock=clock)
    db.close()


def test_upload_then_get_file(store: FileStore) -> None:
    upload = store.create_upload(
        SUB, "ch", "notes.txt", max_bytes=100, metadata={"role": "consumer-input"}
    )
    assert upload.content_type == "text/plain"
    assert {"key": "key", "value": f"{upload.file_id}/notes.txt"} in upload.form_fields
    assert upload.path == f"/v1/files/upload/{upload.upload_id}"
    assert len(upload.upload_id) >= 32  # unguessable: the id is the upload's authorisation

    info = store.complete_upload(upload.upload_id, b"hello")
    assert (info.id, info.name, info.size) == (upload.file_id, "notes.txt", 5)
    stored = store.get_file(SUB, "ch", upload.file_id, "notes.txt")
    assert stored is not None and stored.data == b"hello"
    assert store.get_file(SUB, "ch", upload.file_id, "other.txt") is None
    assert store.get_file(SUB, "other", upload.file_id, "notes.txt") is None
    done = store.get_upload(upload.upload_id)
    assert done is not None and done.completed and done.metadata == {"role": "consumer-input"}


def test_upload_is_single_use(store: FileStore) -> None:
    upload = store.create_upload(SUB, "ch", "a.bin", max_bytes=10)
    store.complete_upload(upload.upload_id, b"1")
    with pytest.raises(UploadAlreadyCompleted):
        store.complete_upload(upload.upload_id, b"2")
    stored = store.get_file(SUB, "ch", upload.file_id, "a.bin")
    assert stored is not None and stored.data == b"1"


def test_upload_expires(store: FileStore, clock: FakeClock) -> None:
    upload = store.create_upload(SUB, "ch", "a.bin", max_bytes=10, ttl_seconds=60)
    clock.now += 61
    with pytest.raises(UploadExpired):
        store.complete_upload(upload.upload_id, b"1")
    # Stale, unused uploads are dropped when the next one is created.
    store.create_upload(SUB, "ch", "b.bin", max_bytes=10)
    with pytest.raises(UploadNotFound):
        store.open_upload(upload.upload_id)


def test_too_large_stores_nothing_and_keeps_the_upload(store: FileStore) -> None:
    upload = store.create_upload(SUB, "ch", "a.bin", max_bytes=3)
    with pytest.raises(FileTooLarge) as info:
        store.complete_upload(upload.upload_id, b"1234")
    assert "EntityTooLarge" in str(info.value) and info.value.max_bytes == 3
    assert store.list_files(SUB, "ch").files == []
    store.complete_upload(upload.upload_id, b"123")


def test_another_size_than_declared_stores_nothing_and_keeps_the_upload(
    store: FileStore,
) -> None:
    upload = store.create_upload(SUB, "ch", "a.bin", max_bytes=10, expected_bytes=4)
    for data in (b"", b"123", b"12345"):
        with pytest.raises(FileSizeMismatch) as info:
            store.complete_upload(upload.upload_id, data)
        assert (info.value.expected, info.value.received) == (4, len(data))
        assert str(info.value).startswith(f"IncompleteBody: received {len(data)} bytes")
    assert store.list_files(SUB, "ch").files == []
    assert store.complete_upload(upload.upload_id, b"1234").size == 4
    with pytest.raises(ValueError, match="expected_bytes"):
        store.create_upload(SUB, "ch", "b.bin", max_bytes=10, expected_bytes=11)


def test_a_database_from_before_declared_sizes_gains_the_column(clock: FakeClock) -> None:
    db = Database(None)
    try:
        db.execute(
            "CREATE TABLE file_uploads (upload_id TEXT PRIMARY KEY, subscribe_key TEXT NOT NULL,"
            " channel TEXT NOT NULL, file_id TEXT NOT NULL, name TEXT NOT NULL,"
            " content_type TEXT NOT NULL, max_bytes INTEGER NOT NULL, expires_at REAL NOT NULL,"
            " metadata TEXT NOT NULL, completed_at REAL)"
        )
        store = FileStore(db, clock=clock)
        upload = store.create_upload(SUB, "ch", "a.bin", max_bytes=10, expected_bytes=2)
        with pytest.raises(FileSizeMismatch):
            store.complete_upload(upload.upload_id, b"1")
        FileStore(db, clock=clock)  # opening it again changes nothing
    finally:
        db.close()


def test_unknown_upload(store: FileStore) -> None:
    assert store.get_upload("nope") is None
    with pytest.raises(UploadNotFound):
        store.complete_upload("nope", b"")


@pytest.mark.parametrize("metadata", [["not", "a", "dict"], {"x": object()}])
def test_metadata_must_be_a_json_object(store: FileStore, metadata: object) -> None:
    with pytest.raises(ValueError, match="metadata"):
        store.create_upload(SUB, "ch", "a.bin", max_bytes=1, metadata=metadata)  # type: ignore[arg-type]


def test_list_pages_are_stable_when_files_share_a_timestamp(
    store: FileStore, clock: FakeClock
) -> None:
    ids = []
    for i in range(5):
        if i == 3:
            clock.now += 1
        upload = store.create_upload(SUB, "ch", f"{i}.txt", max_bytes=10)
        ids.append(store.complete_upload(upload.upload_id, b"x").id)
    seen: list[str] = []
    page = store.list_files(SUB, "ch", limit=2)
    seen += [f.id for f in page.files]
    while page.next:
        page = store.list_files(SUB, "ch", limit=2, next=page.next)
        seen += [f.id for f in page.files]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    with pytest.raises(ValueError, match="next"):
        store.list_files(SUB, "ch", next="garbage!")
    with pytest.raises(ValueError, match="limit"):
        store.list_files(SUB, "ch", limit=101)


def test_delete_removes_file_and_upload_record(store: FileStore) -> None:
    upload = store.create_upload(SUB, "ch", "a.bin", max_bytes=10)
    store.complete_upload(upload.upload_id, b"1")
    assert not store.delete_file(SUB, "ch", upload.file_id, "wrong.bin")
    assert store.delete_file(SUB, "ch", upload.file_id, "a.bin")
    assert store.file_info(SUB, "ch", upload.file_id) is None
    assert store.get_upload(upload.upload_id) is None
    assert not store.delete_file(SUB, "ch", upload.file_id, "a.bin")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "a/b",
        "a\\b",
        "..",
        "../x",
        "a..b",
        "\x00",
        "a\nb",
        "\x7f",
        "\x85",
        "\ud800",
        "?",
        "#",
        "x" * 256,
    ],
)
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidFileName):
        validate_file_name(name)


@pytest.mark.parametrize(
    "name", ["a.txt", "a b (1).pdf", "Übersicht.md", "日本語.txt", ".hidden", "x" * 255, "%41.txt"]
)
def test_good_names(name: str) -> None:
    assert validate_file_name(name) == name


def test_download_signature_binds_file_and_expiry() -> None:
    sig = download_signature("secret", SUB, "ch", "id", "n.txt", 2000)
    assert check_download_signature("secret", SUB, "ch", "id", "n.txt", 2000, sig, now=1999) is None
    assert "expired" in (
        check_download_signature("secret", SUB, "ch", "id", "n.txt", 2000, sig, now=2001) or ""
    )
    for args in (
        ("other", SUB, "ch", "id", "n.txt", 2000),
        ("secret", SUB, "ch2", "id", "n.txt", 2000),
        ("secret", SUB, "ch", "id2", "n.txt", 2000),
        ("secret", SUB, "ch", "id", "m.txt", 2000),
        ("secret", SUB, "ch", "id", "n.txt", 2001),
    ):
        refusal = check_download_signature(*args, signature=sig, now=0)
        assert refusal is not None and "signature" in refusal


@pytest.mark.parametrize("signature", ["é" * 64, "\udcff" * 64, "", "0" * 1000])
def test_a_forged_signature_is_refused_whatever_its_characters(signature: str) -> None:
    refusal = check_download_signature("secret", SUB, "ch", "id", "n.txt", 2000, signature, now=0)
    assert refusal is not None and "signature" in refusal


def test_a_foreign_list_cursor_is_a_value_error(store: FileStore) -> None:
    for cursor in ("WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAsImEiXQ", "!!!"):  # [10**27, "a"]
        with pytest.raises(ValueError, match="Invalid next"):
            store.list_files(SUB, "ch", next=cursor)
