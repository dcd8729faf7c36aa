"""``blocks watch`` (history, then live events and streams) and ``blocks tasks``."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from blocks_network import TaskClient, text_part
from blocks_network.testing import AgentRunner, BlocksTestNetwork
from blocks_network.types import StartTaskMessage, TaskContext

from .conftest import PROCESS_TIMEOUT_S, Runner

WAIT_S = 15.0


def gated_handler(release: threading.Event) -> Any:
    """Streams one event, waits for ``release``, streams another, then completes."""

    def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0, max_latency_ms=0)
        stream.write({"n": 1})
        if not release.wait(WAIT_S):
            raise TimeoutError("the test never released the task")
        ctx.report_status("released")
        stream.write({"n": 2})
        return {"artifacts": [{"data": "done", "mimeType": "text/plain"}]}

    return handler


def test_watch_follows_a_running_task_live(
    run_agent: AgentRunner, blocks_client: TaskClient, cli_env: dict[str, str], tmp_path: Path
) -> None:
    release = threading.Event()
    run_agent(gated_handler(release), agent_name="cli_gated")
    with blocks_client.send_message("cli_gated", [text_part("go")], stream=True) as session:
        session.wait_for_stream(timeout=WAIT_S)
        stdout = (tmp_path / "stdout").open("w")
        watch = subprocess.Popen(
            [sys.executable, "-m", "blocks_network.cli.blocks", "watch", session.task_id],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env={**cli_env, "PYTHONUNBUFFERED": "1"},
        )
        try:
            lines: queue.Queue[str] = queue.Queue()

            def read_stderr() -> None:
                assert watch.stderr is not None
                for line in watch.stderr:
                    lines.put(line.rstrip("\n"))

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            # Release the task only once watch has reattached and opened the stream.
            while "stream _default (events) opened" not in (line := lines.get(timeout=WAIT_S)):
                assert "completed" not in line
            release.set()
            watch.wait(PROCESS_TIMEOUT_S)
            reader.join(WAIT_S)  # stderr is read to its end
        finally:
            release.set()
            if watch.poll() is None:
                watch.kill()
                watch.wait()
            stdout.close()
        out = (tmp_path / "stdout").read_text()
        assert watch.returncode == 0
        assert out == "done\n"  # the result; a request task's stream is live, on stderr
        seen = []
        while not lines.empty():
            seen.append(lines.get())
        assert "[task] status: released" in seen
        assert '{"n": 2}' in seen
        assert any(line.startswith("[task] completed (") for line in seen)


def test_watch_a_finished_task_prints_history_and_exits(
    run_agent: AgentRunner, blocks: Runner
) -> None:
    def quick(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        return {"artifacts": [{"data": '{"x": 1}', "mimeType": "application/json"}]}

    run_agent(quick, agent_name="cli_quick")
    task_id = blocks("send", "cli_quick", "go", "--no-wait").out.strip()
    assert blocks("watch", task_id, "--timeout", "15").code == 0  # may still be running here
    result = blocks("watch", task_id)
    assert result.code == 0
    assert result.out == '{"x": 1}\n'
    assert result.err.splitlines()[0] == f"[task] {task_id} (cli_quick): completed"
    as_json = [json.loads(line) for line in blocks("watch", task_id, "--json").out.splitlines()]
    assert [o["type"] for o in as_json] == ["event"] * 4 + ["summary"]
    assert as_json[-1]["state"] == "completed" and as_json[-1]["artifacts"][0]["text"] == '{"x": 1}'


def test_watch_an_unknown_task_exits_1(blocks: Runner) -> None:
    result = blocks("watch", "t_does_not_exist")
    assert result.code == 1
    assert result.err.startswith("blocks watch: ") and "not found" in result.err.lower()


def test_tasks_list_get_and_cancel(run_agent: AgentRunner, blocks: Runner) -> None:
    def until_canceled(task: StartTaskMessage, ctx: TaskContext) -> None:
        ctx.cancel_event.wait(WAIT_S)

    run_agent(until_canceled, agent_name="cli_cancel")
    task_id = blocks("send", "cli_cancel", "go", "--no-wait").out.strip()

    listing = blocks("tasks", "list", "--agent", "cli_cancel")
    assert listing.code == 0
    header, *rows = listing.out.splitlines()
    assert header.split() == ["TASK", "AGENT", "STATE", "CREATED"]
    assert [row.split()[0] for row in rows] == [task_id]
    as_json = json.loads(blocks("tasks", "list", "--agent", "cli_cancel", "--json").out)
    assert [t["taskId"] for t in as_json["tasks"]] == [task_id]

    got = blocks("tasks", "get", task_id)
    assert got.code == 0
    fields = dict(line.split(None, 1) for line in got.out.splitlines())
    assert fields["taskId"] == task_id and fields["agentName"] == "cli_cancel"

    canceled = blocks("tasks", "cancel", task_id, "--wait")
    assert canceled.code == 0, canceled.err
    assert canceled.out.splitlines() == [f"cancel requested for {task_id}", f"{task_id}: canceled"]
    assert json.loads(blocks("tasks", "get", task_id, "--json").out)["state"] == "canceled"

    second = blocks("send", "cli_cancel", "again", "--no-wait").out.strip()
    terminated = blocks("tasks", "cancel", second, "--terminate", "--wait")
    assert terminated.code == 0, terminated.err
    assert terminated.out.splitlines() == [
        f"terminate requested for {second}",
        f"{second}: canceled",
    ]
    assert json.loads(blocks("tasks", "get", second, "--json").out)["reason"] == "terminated"

    again = blocks("tasks", "cancel", task_id)
    assert again.code == 1
    assert again.out == ""
    assert again.err == (
        f"blocks tasks cancel: task {task_id} already ended (canceled); nothing to stop\n"
    )


def test_tasks_cancel_of_a_completed_task_says_it_ended(
    run_agent: AgentRunner, blocks: Runner
) -> None:
    run_agent(lambda task, ctx: None, agent_name="cli_done")
    sent = blocks("send", "cli_done", "go", "--json")
    assert sent.code == 0, sent.err
    task_id = json.loads(sent.out)["taskId"]
    result = blocks("tasks", "cancel", task_id)
    assert result.code == 1
    assert "cancel requested" not in result.out
    assert result.err == (
        f"blocks tasks cancel: task {task_id} already ended (completed); nothing to stop\n"
    )


def test_tasks_of_an_empty_filter_and_unknown_ids(blocks: Runner) -> None:
    empty = blocks("tasks", "list", "--agent", "nobody_here")
    assert (empty.code, empty.out) == (0, "")
    assert empty.err == "no tasks\n"
    unknown = blocks("tasks", "get", "t_nope")
    assert unknown.code == 1 and unknown.err.startswith("blocks tasks get: ")


def test_another_user_cannot_see_your_tasks(
    run_agent: AgentRunner,
    blocks: Runner,
    blocks_network: BlocksTestNetwork,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def quick(task: StartTaskMessage, ctx: TaskContext) -> None:
        return None

    run_agent(quick, agent_name="cli_private")
    task_id = blocks("send", "cli_private", "go", "--no-wait").out.strip()
    _user_id, other_key = blocks_network.create_user("cli-other")
    monkeypatch.setenv("BLOCKS_API_KEY", other_key)
    assert blocks("tasks", "get", task_id).code == 1
    assert task_id not in blocks("tasks", "list").out
