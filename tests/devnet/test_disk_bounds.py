"""Under sustained echo load the WAL stays near its limit and a finished task costs little
disk (a real network, a real echo instance, consumers over the SDK)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from blocks_devnet.backend.app import DATABASE_FILE
from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_devnet.store import database
from blocks_network.agent import start_agent_instance
from blocks_network.consumer import TaskClient, text_part
from blocks_network.handlers.echo import echo_handler
from blocks_network.types import AgentInstanceOptions

LOAD_SECONDS = 20.0
CONSUMERS = 8
WAL_LIMIT_MB = 1.0
#: Checks of the WAL's size this often (1 s in a real network): what the WAL grows by
#: between two checks stays small whatever this machine's speed.
CHECKPOINT_INTERVAL_S = 0.1
#: The limit plus what a busy network writes between two checks and the restart: with a
#: commit per event-loop turn (every answer waits for its commit) that is up to ~2.5 MB per
#: check here, so a few checks' worth; without the limit the WAL passed 600 MB in this run.
WAL_BOUND_BYTES = 16 * 1024 * 1024
BYTES_PER_TASK_TARGET = 4096
#: Enough tasks that an unbounded WAL would pass the bound several times over (a finished
#: echo task appends ~15 KB of frames) and fixed pages weigh little per task.
MIN_TASKS = 2000


def test_sustained_echo_load_keeps_the_wal_bounded_and_tasks_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "CHECKPOINT_INTERVAL_SECONDS", CHECKPOINT_INTERVAL_S)
    data_dir = tmp_path / "devnet"
    config = DevnetConfig(port=0, data_dir=data_dir, long_poll_seconds=5, wal_limit_mb=WAL_LIMIT_MB)
    network = LocalNetwork(config).start()
    wal = data_dir / f"{DATABASE_FILE}-wal"
    stop = threading.Event()
    largest_wal = [0]
    done = [0]
    failures: list[BaseException] = []
    lock = threading.Lock()

    def watch_wal() -> None:
        while not stop.wait(0.05):
            size = wal.stat().st_size if wal.exists() else 0
            largest_wal[0] = max(largest_wal[0], size)

    def consume(deadline: float) -> None:
        try:
            with TaskClient.create("free", api_key=network.api_key) as client:
                while time.monotonic() < deadline:
                    with client.send_message("echo", [text_part("hello")]) as session:
                        assert session.wait_for_terminal(timeout=30).state == "completed"
                    with lock:
                        done[0] += 1
        except BaseException as exc:
            failures.append(exc)

    for key, value in network.env().items():
        monkeypatch.setenv(key, value)
    handle = start_agent_instance(
        AgentInstanceOptions(agent_name="echo", handler=echo_handler, concurrency=CONSUMERS)
    )
    watcher = threading.Thread(target=watch_wal, daemon=True)
    watcher.start()
    deadline = time.monotonic() + LOAD_SECONDS
    consumers = [
        threading.Thread(target=consume, args=(deadline,), daemon=True) for _ in range(CONSUMERS)
    ]
    try:
        for thread in consumers:
            thread.start()
        for thread in consumers:
            thread.join(LOAD_SECONDS + 60)
        assert not any(thread.is_alive() for thread in consumers)
    finally:
        stop.set()
        watcher.join(5)
        handle.stop(grace_s=0)
        network.stop()  # a clean stop: everything committed and checkpointed
    assert not failures, failures[0]
    assert done[0] >= MIN_TASKS, f"only {done[0]} tasks in {LOAD_SECONDS} s: too few to judge"
    assert largest_wal[0] <= WAL_BOUND_BYTES, f"the WAL reached {largest_wal[0]} bytes"
    db_file = data_dir / DATABASE_FILE
    assert not wal.exists() or wal.stat().st_size == 0
    per_task = db_file.stat().st_size / done[0]
    assert per_task <= BYTES_PER_TASK_TARGET, f"{per_task:.0f} bytes of database per task"


RETENTION_S = 1.0
SWEEP_DEADLINE_S = 20.0


def test_retention_removes_finished_tasks_and_their_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = DevnetConfig(port=0, data_dir=tmp_path / "devnet", retention_days=RETENTION_S / 86_400)
    network = LocalNetwork(config).start()
    for key, value in network.env().items():
        monkeypatch.setenv(key, value)
    handle = start_agent_instance(AgentInstanceOptions(agent_name="echo", handler=echo_handler))
    ctx = network.context
    try:
        with (
            TaskClient.create("free", api_key=network.api_key) as client,
            client.send_message("echo", [text_part("old")]) as session,
        ):
            assert session.wait_for_terminal(timeout=30).state == "completed"
            task_id = session.task_id
        record = network.call(lambda: ctx.tasks.store.get(task_id))
        assert record is not None
        task_channel = f"u.{record.org_id}.{task_id}"

        def history_rows() -> int:
            row = ctx.db.query_one(
                "SELECT COUNT(*) AS n FROM messages WHERE channel=?", (task_channel,)
            )
            return int(row["n"]) if row is not None else 0

        assert network.call(history_rows) > 0
        deadline = time.monotonic() + SWEEP_DEADLINE_S
        while time.monotonic() < deadline:
            network.call(ctx.realtime.sweeper.sweep_all_now)
            if network.call(lambda: ctx.tasks.store.get(task_id)) is None:
                break
            time.sleep(0.1)
        assert network.call(lambda: ctx.tasks.store.get(task_id)) is None
        assert network.call(history_rows) == 0
        tokens = network.call(
            lambda: ctx.db.query("SELECT 1 FROM task_tokens WHERE task_id=?", (task_id,))
        )
        assert tokens == []
    finally:
        handle.stop(grace_s=0)
        network.stop()
