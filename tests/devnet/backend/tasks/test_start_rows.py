"""A StartTask's row leaves the disk at its task's terminal; the tracking is bounded."""

from __future__ import annotations

import json

import pytest

from blocks_devnet.backend.context import BACKEND_UUID
from blocks_devnet.backend.tasks import start_rows
from blocks_devnet.backend.tasks.start_rows import StartTaskRows
from blocks_devnet.realtime.message_log import MessageLog
from blocks_devnet.store.database import Database

SUB = "sub-c-start"
CONTROL = "agent.agt_1.control"


def start_task(log: MessageLog, task_id: str) -> int:
    message = {"type": "StartTask", "taskId": task_id}
    return log.append(
        subscribe_key=SUB,
        channel=CONTROL,
        publisher=BACKEND_UUID,
        message=message,
        message_json=json.dumps(message),
        store=False,
    )


def stored_task_ids(db: Database) -> list[str]:
    return [json.loads(r["message"])["taskId"] for r in db.query("SELECT message FROM messages")]


def test_the_row_goes_at_the_terminal_and_tracking_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(start_rows, "MAX_TRACKED", 2)
    db = Database(None)
    log = MessageLog(db)
    rows = StartTaskRows(log)
    log.add_observer(rows)
    for task_id in ("t_1", "t_2", "t_3"):
        start_task(log, task_id)
    assert len(rows) == 2  # t_1 forgotten: its row waits for the unstored prune instead
    rows.on_terminal("t_1")
    rows.on_terminal("t_3")
    assert stored_task_ids(db) == ["t_1", "t_2"]
    assert len(rows) == 1
    db.close()


def test_other_messages_are_not_tracked() -> None:
    db = Database(None)
    log = MessageLog(db)
    rows = StartTaskRows(log)
    log.add_observer(rows)
    log.append(
        subscribe_key=SUB,
        channel="u.org.t_1",
        publisher=BACKEND_UUID,
        message={"type": "StartTask", "taskId": "t_1"},
        message_json="{}",
    )
    log.append(
        subscribe_key=SUB,
        channel=CONTROL,
        publisher="someone",
        message={"type": "StartTask", "taskId": "t_2"},
        message_json="{}",
    )
    assert len(rows) == 0
    db.close()
