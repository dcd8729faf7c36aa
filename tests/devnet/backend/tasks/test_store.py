"""Task records in SQLite: first terminal wins, idempotency keys, paging, restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from blocks_devnet.backend.tasks.store import TaskFilter, TaskStore
from blocks_devnet.store.cursor import InvalidCursor, decode_cursor
from blocks_devnet.store.database import Database
from tests.devnet.backend.tasks.test_scanner import record
from tests.support.sql_spy import counts, read_statements


@pytest.fixture
def store() -> TaskStore:
    return TaskStore(Database(None))


def test_first_terminal_wins(store: TaskStore) -> None:
    store.insert(record(state="queued", instance_id=None))
    assert store.mark_running("t_1", 5) is True
    finished = store.finish("t_1", "completed", 10)
    assert finished is not None and finished.state == "completed" and finished.ended_ms == 10
    assert store.finish("t_1", "failed", 11, error="late") is None
    after = store.get("t_1")
    assert after is not None and after.state == "completed" and after.error is None
    assert store.mark_running("t_1", 12) is False


def test_idempotency_key_is_unique_per_owner(store: TaskStore) -> None:
    assert store.insert(record(idempotency_key="k")) is not None
    assert store.insert(record(task_id="t_2", idempotency_key="k")) is None
    assert store.insert(record(task_id="t_3", idempotency_key="k", owner_id="other")) is not None
    found = store.find_idempotent("user_c", "k")
    assert found is not None and found.task_id == "t_1"


def test_listing_pages_newest_first_with_visibility(store: TaskStore) -> None:
    for i in range(5):
        store.insert(record(task_id=f"t_{i}", created_ms=1000 + i))
    store.insert(record(task_id="hidden", owner_id="x", agent_org_id="org_x"))
    first = store.list_visible("user_c", "org_none", TaskFilter(), limit=2, cursor=None)
    assert [r.task_id for r in first.tasks] == ["t_4", "t_3"] and first.total_count == 5
    assert first.next is not None
    second = store.list_visible("user_c", "org_none", TaskFilter(), limit=10, cursor=first.next)
    assert [r.task_id for r in second.tasks] == ["t_2", "t_1", "t_0"] and second.next is None
    by_org = store.list_visible("nobody", "org_x", TaskFilter(), limit=10, cursor=None)
    assert [r.task_id for r in by_org.tasks] == ["hidden"]


def test_paging_merges_owned_and_org_tasks_once_each_in_order(store: TaskStore) -> None:
    """Owned tasks, tasks of the org's agents, tasks that are both, equal creation times:
    every page walk sees each visible task once, newest first (ties by task id)."""
    expected = []
    for i in range(12):
        owner, org = [("me", "org_other"), ("someone", "org_me"), ("me", "org_me")][i % 3]
        task_id = f"t_{i:02d}"
        store.insert(record(task_id=task_id, owner_id=owner, agent_org_id=org, created_ms=i // 2))
        expected.append(task_id)
    store.insert(record(task_id="t_hidden", owner_id="x", agent_org_id="org_x", created_ms=3))
    expected.sort(key=lambda t: (int(t[2:]) // 2, t), reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_visible("me", "org_me", TaskFilter(), limit=5, cursor=cursor)
        assert page.total_count == 12
        seen += [r.task_id for r in page.tasks]
        if page.next is None:
            break
        cursor = page.next
    assert seen == expected
    mine = store.list_visible("me", "org_me", TaskFilter(owner_id="someone"), limit=20, cursor=None)
    assert [r.task_id for r in mine.tasks] == [t for t in expected if int(t[2:]) % 3 == 1]


def test_bad_cursor_is_refused() -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor("not-a-cursor")


def test_records_survive_a_restart(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    TaskStore(db).insert(replace(record(), request_parts=[{"partId": "text", "text": "hi"}]))
    db.close()
    reopened = TaskStore(Database(tmp_path / "db.sqlite3")).get("t_1")
    assert reopened is not None and reopened.request_parts == [{"partId": "text", "text": "hi"}]
    assert reopened.caller_claims == {} and reopened.has_stream is False


def test_a_change_makes_a_new_record_and_leaves_the_old_one_alone(store: TaskStore) -> None:
    original = record(task_id="t_change", state="submitted")
    store.insert(original)
    assert store.mark_running("t_change", 5_000)
    changed = store.get("t_change")
    assert changed is not None and changed is not original
    assert (changed.state, changed.started_ms, changed.updated_ms) == ("running", 5_000, 5_000)
    assert changed == replace(original, state="running", started_ms=5_000, updated_ms=5_000)
    assert original.state == "submitted"  # records are values: the stored one was copied


def test_a_change_naming_no_field_is_refused() -> None:
    from blocks_devnet.backend.tasks.store import _with_changes

    with pytest.raises(TypeError, match="no field"):
        _with_changes(record(), {"stat": "running"})


def test_requeue_takes_back_only_a_task_its_instance_never_started(store: TaskStore) -> None:
    store.insert(record(task_id="t_sent", state="submitted", instance_id="AG-1"))
    assert store.requeue("t_sent", "AG-2", 5) is False  # another instance's task
    assert store.requeue("t_sent", "AG-1", 5) is True
    back = store.get("t_sent")
    assert back is not None
    assert (back.state, back.instance_id, back.dispatched_ms) == ("queued", None, None)
    store.insert(record(task_id="t_run", state="submitted", instance_id="AG-1"))
    assert store.mark_running("t_run", 6)
    assert store.requeue("t_run", "AG-1", 7) is False  # started: never taken back


def test_retention_deletes_old_finished_tasks_in_batches_and_keeps_active_ones(
    store: TaskStore,
) -> None:
    for n in range(3):
        store.insert(record(task_id=f"old_{n}", state="completed", created_ms=100 + n))
    store.insert(record(task_id="old_running", state="running", created_ms=50))
    store.insert(record(task_id="new", state="failed", created_ms=10_000))
    assert store.sweep_finished(created_before_ms=1000, limit=2) == ["old_0", "old_1"]
    assert store.sweep_finished(created_before_ms=1000, limit=2) == ["old_2"]
    assert store.sweep_finished(created_before_ms=1000, limit=2) == []
    assert store.get("old_0") is None  # gone from the cache too
    assert store.get("old_running") is not None and store.get("new") is not None


def test_listing_without_the_total_runs_no_count(monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(None)
    store = TaskStore(db)
    for i in range(3):
        store.insert(record(task_id=f"t_{i}", created_ms=1000 + i))
    counted = store.list_visible("user_c", "org_none", TaskFilter(), limit=2, cursor=None)
    statements = read_statements(db, monkeypatch)
    uncounted = store.list_visible(
        "user_c", "org_none", TaskFilter(), limit=2, cursor=None, count_total=False
    )
    assert counted.total_count == 3 and uncounted.total_count is None
    assert uncounted.tasks == counted.tasks and uncounted.next == counted.next
    assert statements and not counts(statements), statements
