"""A handler's exception as a user of ``blocks-run`` meets it: the consumer reads its type and
message, the agent's stderr has one ERROR line with the traceback (at the default LOG_LEVEL;
JSON lines, ``LOG_FORMAT=json``, so the test reads the fields)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from blocks_devnet.network import LocalNetwork
from blocks_network.consumer import TaskClient, text_part
from tests.sdk.agent.agent_process import AgentProcess, clean_env, write_card_project

WAIT_S = 20.0

TYPO = """
    def run(task, ctx=None):
        return {"artifacts": [{"data": task.request_parts[0]["txt"]}]}
"""


def _error_lines(proc: AgentProcess, task_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in proc.stderr_lines]
    return [line for line in lines if line["level"] == "error" and line.get("taskId") == task_id]


def test_the_consumer_reads_the_type_and_the_log_has_the_traceback(
    network: LocalNetwork, tmp_path: Path
) -> None:
    write_card_project(tmp_path, TYPO)
    proc = AgentProcess([], cwd=tmp_path, env=clean_env(**network.env(), LOG_FORMAT="json"))
    try:
        proc.wait_line("running")
        client = TaskClient.create("free", api_key=network.api_key, cdm_url=network.cdm_url)
        with client, client.send_message("card_agent", [text_part("x")]) as session:
            terminal = session.wait_for_terminal(timeout=WAIT_S)
        assert (terminal.state, terminal.error) == ("failed", "KeyError: 'txt'")
        deadline = time.monotonic() + WAIT_S
        while not _error_lines(proc, terminal.task_id) and time.monotonic() < deadline:
            time.sleep(0.05)  # the stderr reader thread trails the terminal
        [line] = _error_lines(proc, terminal.task_id)
        assert line["message"] == f"task {terminal.task_id} failed: KeyError: 'txt'"
        assert (line["agent"], line["logger"]) == ("card_agent", "blocks_network.agent.task_runner")
        assert line["error"] == "KeyError: 'txt'"
        assert line["traceback"].startswith("Traceback (most recent call last):")
        assert 'task.request_parts[0]["txt"]' in line["traceback"]
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.close()
