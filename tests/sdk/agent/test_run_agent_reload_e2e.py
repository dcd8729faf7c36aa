"""``blocks-run --reload`` as a developer uses it: edit the handler, the running task finishes
on the old code, the next task runs the new code; a syntax error mid-edit keeps the old
handler serving until the file is fixed."""

from __future__ import annotations

import signal
import textwrap
import time
from pathlib import Path

from blocks_devnet.network import LocalNetwork
from blocks_network.cli.exit_codes import EXIT_OK
from blocks_network.consumer import TaskClient, TaskSession, text_part
from tests.sdk.agent.agent_process import AgentProcess, clean_env, write_card_project

WAIT_S = 20.0

VERSIONED = """
    import time

    VERSION = "{version}"

    def run(task, ctx):
        text = task.request_parts[0]["text"]
        if text == "slow":
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                time.sleep(0.05)  # ignores cancellation: a reload must let it finish
        return {{"artifacts": [{{"data": VERSION + ":" + text, "mimeType": "text/plain"}}]}}
"""


def _write(project: Path, source: str) -> None:
    (project / "agent" / "handler.py").write_text(textwrap.dedent(source))


def _result(session: TaskSession) -> str:
    with session:
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        assert terminal.state == "completed", terminal.data
        return session.download_artifact(session.list_artifacts()[0]).data.decode()


def _wait_stderr(proc: AgentProcess, needle: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for line in list(proc.stderr_lines):
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no stderr line with {needle!r}: {proc.stderr_lines}")


def test_reload_drains_then_serves_the_edited_handler(
    network: LocalNetwork, tmp_path: Path
) -> None:
    write_card_project(tmp_path, VERSIONED.format(version="v1"))
    proc = AgentProcess(["--reload"], cwd=tmp_path, env=clean_env(**network.env()))
    client = TaskClient.create("free", api_key=network.api_key, cdm_url=network.cdm_url)
    try:
        first_id = proc.wait_line("instance ID").split("instance ID: ")[1]
        assert "agent-card.json" in proc.wait_line("reloading when these files change")
        proc.wait_line("running (press Ctrl+C to stop)")
        slow = client.send_message("card_agent", [text_part("slow")])
        deadline = time.monotonic() + WAIT_S
        while not any(e.data.get("state") == "running" for e in slow.events):
            assert time.monotonic() < deadline, "the slow task never started"
            time.sleep(0.05)
        _write(tmp_path, VERSIONED.format(version="v2-longer"))
        assert "handler.py" in proc.wait_line("changed:")
        proc.wait_line(f"waiting up to 3 s for 1 running task ({slow.task_id})")
        # The task in flight finished on the code it started with.
        assert _result(slow) == "v1:slow"
        second_id = proc.wait_line("instance ID").split("instance ID: ")[1]
        assert second_id != first_id
        proc.wait_line("running (press Ctrl+C to stop)")
        assert _result(client.send_message("card_agent", [text_part("a")])) == "v2-longer:a"

        _write(tmp_path, "def run(task, ctx)\n    return None\n")  # a syntax error mid-edit
        assert "SyntaxError" in _wait_stderr(proc, "still running the previous handler")
        assert _result(client.send_message("card_agent", [text_part("b")])) == "v2-longer:b"

        _write(tmp_path, VERSIONED.format(version="v3"))
        proc.wait_line("running (press Ctrl+C to stop)")
        assert _result(client.send_message("card_agent", [text_part("c")])) == "v3:c"
        proc.signal(signal.SIGINT)
        assert proc.wait() == EXIT_OK
    finally:
        client.close()
        proc.close()
