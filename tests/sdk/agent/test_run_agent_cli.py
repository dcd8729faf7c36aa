"""``blocks-run`` as users run it: card mode, built-ins, .env, signals, bad files."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.cli.exit_codes import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from blocks_network.consumer import TaskClient, text_part
from tests.sdk.agent.agent_process import AgentProcess, clean_env, run_to_exit, write_card_project
from tests.sdk.agent.conftest import fast_safety_net

WAIT_S = 20.0
#: A credential in a line: an ``auth``/``token`` parameter or a bearer key not redacted.
UNREDACTED = re.compile(r"(?:\b(?:auth|token)=|Bearer )(?!\[redacted\])")


UPPER = """
    def run(task, ctx=None):
        text = task.request_parts[0]["text"]
        return {"artifacts": [{"data": text.upper(), "mimeType": "text/plain"}]}
"""

SLOW = """
    import time

    def run(task, ctx):
        deadline = time.monotonic() + float(task.request_parts[0]["text"])
        while time.monotonic() < deadline:
            time.sleep(0.05)  # ignores cancellation on purpose
        return {"artifacts": [{"data": "done", "mimeType": "text/plain"}]}
"""


@pytest.fixture
def processes() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for proc in started:
        proc.close()


def _start(
    processes: list[AgentProcess], args: list[str], cwd: Path, env: dict[str, str]
) -> AgentProcess:
    proc = AgentProcess(args, cwd=cwd, env=env)
    processes.append(proc)
    return proc


def _send(network: LocalNetwork, agent: str, text: str) -> tuple[TaskClient, Any]:
    client = TaskClient.create("free", api_key=network.api_key, cdm_url=network.cdm_url)
    return client, client.send_message(agent, [text_part(text)])


def test_card_mode_reads_dotenv_and_runs_the_cards_handler(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    write_card_project(tmp_path, UPPER, concurrency=2)
    (tmp_path / ".env").write_text(
        f"BLOCKS_CDM_URL={network.cdm_url}\nexport BLOCKS_API_KEY='{network.api_key}'\n"
    )
    proc = _start(processes, [], tmp_path, clean_env())
    assert 'starting handler "agent/handler.py" on agent name "card_agent"' in proc.wait_line(
        "starting handler"
    )
    assert "concurrency: 2" in proc.wait_line("concurrency")
    assert network.cdm_url in proc.wait_line("network config")
    assert proc.wait_line("instance ID").split("instance ID: ")[1].startswith("AG-card_agent-")
    proc.wait_line("running (press Ctrl+C to stop)")
    client, session = _send(network, "card_agent", "shout")
    with client, session:
        assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
        assert session.download_artifact(session.list_artifacts()[0]).data == b"SHOUT"
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0
    assert any("stopped" in line for line in proc.lines)


def test_builtin_adder_by_name(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    proc = _start(processes, ["--handler", "adder"], tmp_path, clean_env(**network.env()))
    proc.wait_line("running")
    client, session = _send(network, "adder", '{"a": 1, "b": 2}')
    with client, session:
        session.wait_for_terminal(timeout=WAIT_S)
        data = session.download_artifact(session.list_artifacts()[0]).data
    assert json.loads(data) == {"ok": True, "a": 1, "b": 2, "sum": 3}
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_sigterm_lets_the_running_task_finish(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    write_card_project(tmp_path, SLOW)
    proc = _start(processes, [], tmp_path, clean_env(**network.env()))
    proc.wait_line("running")
    client, session = _send(network, "card_agent", "1.0")
    with client, session:
        started = _wait_running(session)
        assert started
        proc.signal(signal.SIGTERM)
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        assert terminal.state == "completed", (terminal.data, proc.lines, proc.stderr_lines)
        assert session.download_artifact(session.list_artifacts()[0]).data == b"done"
    assert proc.wait() == 0


def _slow_agent(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess], grace: str
) -> AgentProcess:
    write_card_project(tmp_path, SLOW)
    env = clean_env(**network.env(), AGENT_SHUTDOWN_GRACE_SEC=grace)
    proc = _start(processes, [], tmp_path, env)
    proc.wait_line("running")
    return proc


def _logged(proc: AgentProcess, text: str) -> bool:
    return any(text in line for line in proc.stderr_lines)


def test_sigterm_cancels_what_outlives_the_grace_period(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    proc = _slow_agent(network, tmp_path, processes, "0.3")
    client, session = _send(network, "card_agent", "30")
    with client, session:
        assert _wait_running(session)
        began = time.monotonic()
        proc.signal(signal.SIGTERM)
        # It says what it waits for, and what it does when the wait is over.
        assert proc.wait_line("stopping:").endswith(
            f"stopping: waiting up to 0.3 s for 1 running task ({session.task_id})"
            " — press Ctrl+C again to stop now"
        )
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        assert (terminal.state, terminal.data.get("reason")) == ("canceled", "instance_shutdown")
    assert proc.wait() == EXIT_OK
    assert time.monotonic() - began < 10
    assert _logged(proc, "1 running task still running after 0.3 s: cancelled, waiting up to 1 s")


def test_a_second_ctrl_c_stops_at_once_and_the_consumer_sees_canceled(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    # A grace period far longer than the test: only the second Ctrl+C can end it in time.
    proc = _slow_agent(network, tmp_path, processes, "120")
    client, session = _send(network, "card_agent", "300")
    with client, session:
        assert _wait_running(session)
        proc.signal(signal.SIGINT)
        proc.wait_line(f"waiting up to 120 s for 1 running task ({session.task_id})")
        proc.signal(signal.SIGINT)
        assert proc.wait() == EXIT_INTERRUPTED
        # Published before the process exited: the terminal is on the channel already.
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        assert (terminal.state, terminal.data.get("reason")) == ("canceled", "instance_shutdown")
    assert _logged(proc, f"stopping now: ending 1 running task(s) as canceled ({session.task_id})")


def test_killed_instance_is_ended_by_the_safety_net(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    fast_safety_net(network)
    write_card_project(tmp_path, SLOW)
    proc = _start(processes, [], tmp_path, clean_env(**network.env()))
    proc.wait_line("running")
    client, session = _send(network, "card_agent", "60")
    with client, session:
        assert _wait_running(session)
        proc.kill()
        # The instance's presence times out (20 s) and the scanner fails the task.
        terminal = session.wait_for_terminal(timeout=45)
        assert terminal.state == "failed"
        assert "went offline" in terminal.data["error"]


def _wait_running(session: Any, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.type == "progress" and e.data.get("state") == "running" for e in session.events):
            return True
        time.sleep(0.05)
    return False


# --- bad input ---------------------------------------------------------------------------


def _one_line_error(code: int, stderr: str) -> str:
    assert code == EXIT_USAGE, stderr  # a bad file or a missing key is configuration
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert " ERROR " in lines[0]
    return lines[0]


def test_missing_registry_file(tmp_path: Path) -> None:
    code, _, stderr = run_to_exit(
        ["--registry", "nope.json", "--handler", "echo"], cwd=tmp_path, env=clean_env()
    )
    assert "ERROR nope.json: file not found" in _one_line_error(code, stderr)


def test_no_card_and_no_handler_says_it_runs_the_builtin_echo(tmp_path: Path) -> None:
    code, _, stderr = run_to_exit([], cwd=tmp_path, env=clean_env())
    note, error = stderr.splitlines()  # no API key here: the note, then the start-up error
    assert note.endswith(
        "WARN  no agent-card.json here and no --handler: running the built-in echo handler"
    )
    assert code == EXIT_USAGE and "ERROR BLOCKS_API_KEY is not set" in error


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("{", "registry.json: not valid JSON"),
        (
            '{"schemaVersion": "1.0", "handlers": []}',
            "registry.json: handlers: required, must be a non-empty array",
        ),
        ('{"handlers": [{}]}', "registry.json: schemaVersion: required"),
        (
            '{"schemaVersion": "1", "handlers": [{"name": "echo", "agentName": "echo", "runtime": "python",'
            ' "entrypoint": {"path": "./mine.py"}}]}',
            "registry.json: handlers[0].entrypoint.symbol: required",
        ),
        (
            '{"schemaVersion": "1", "handlers": [{"name": "echo", "agentName": "acme-echo", "runtime": "python",'
            ' "entrypoint": {"path": "./mine.py", "symbol": "run"}}]}',
            "registry.json: handlers[0].agentName: 'acme-echo' must use only letters",
        ),
        (
            '{"schemaVersion": "1", "handlers": [{"name": "echo", "agentName": "echo", "runtime": "python",'
            ' "entrypoint": {"path": "./missing.py", "symbol": "run"}}]}',
            "registry.json: handlers[0].entrypoint.path: file not found: ./missing.py",
        ),
        (
            '{"schemaVersion": "1", "handlers": [{"name": "other", "agentName": "other", "runtime": "python",'
            ' "entrypoint": {"path": "./mine.py", "symbol": "run"}}]}',
            "registry.json: handlers: no python handler named 'echo' (available: other)",
        ),
    ],
)
def test_bad_registry_names_file_and_field(tmp_path: Path, registry: str, expected: str) -> None:
    (tmp_path / "registry.json").write_text(registry)
    code, _, stderr = run_to_exit(
        ["--registry", "registry.json", "--handler", "echo"], cwd=tmp_path, env=clean_env()
    )
    assert expected in _one_line_error(code, stderr)


def test_custom_registry_entry_with_a_missing_symbol(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def other(task, ctx):\n    return None\n")
    (tmp_path / "registry.json").write_text(
        json.dumps(
            {
                "schemaVersion": "1.0",
                "handlers": [
                    {
                        "name": "mine",
                        "agentName": "mine",
                        "runtime": "python",
                        "entrypoint": {"path": "./mine.py", "symbol": "run"},
                    }
                ],
            }
        )
    )
    code, _, stderr = run_to_exit(
        ["--registry", "registry.json", "--handler", "mine"], cwd=tmp_path, env=clean_env()
    )
    assert (
        "registry.json: handlers[0].entrypoint.symbol: 'run' is not defined in ./mine.py"
        in _one_line_error(code, stderr)
    )


def test_card_without_runtime_handler(tmp_path: Path) -> None:
    write_card_project(tmp_path, UPPER)
    card = json.loads((tmp_path / "agent-card.json").read_text())
    del card["runtime"]["handler"]
    (tmp_path / "agent-card.json").write_text(json.dumps(card))
    code, _, stderr = run_to_exit([], cwd=tmp_path, env=clean_env())
    assert "agent-card.json: runtime.handler" in _one_line_error(code, stderr)


def test_card_with_missing_handler_file(tmp_path: Path) -> None:
    write_card_project(tmp_path, UPPER)
    (tmp_path / "agent" / "handler.py").unlink()
    code, _, stderr = run_to_exit([], cwd=tmp_path, env=clean_env())
    line = _one_line_error(code, stderr)
    assert "agent-card.json: runtime.handler: file not found: agent/handler.py" in line


def test_card_with_a_missing_export_and_the_debug_traceback(tmp_path: Path) -> None:
    write_card_project(tmp_path, "def handler(task, ctx):\n    return None\n")
    code, _, stderr = run_to_exit([], cwd=tmp_path, env=clean_env())
    assert "agent-card.json: runtime.handlerExport: 'run' is not defined" in _one_line_error(
        code, stderr
    )
    code, _, stderr = run_to_exit([], cwd=tmp_path, env=clean_env(LOG_LEVEL="debug"))
    assert code == EXIT_USAGE and "Traceback" in stderr


def test_card_that_breaks_a_card_rule(tmp_path: Path) -> None:
    write_card_project(tmp_path, UPPER)
    card = json.loads((tmp_path / "agent-card.json").read_text())
    card["identity"]["agentName"] = "card-agent"
    (tmp_path / "agent-card.json").write_text(json.dumps(card))
    code, _, stderr = run_to_exit([], cwd=tmp_path, env=clean_env())
    assert "agent-card.json: identity.agentName:" in _one_line_error(code, stderr)


def test_missing_api_key_says_how_to_get_one(tmp_path: Path) -> None:
    code, _stdout, stderr = run_to_exit(["--handler", "echo"], cwd=tmp_path, env=clean_env())
    line = _one_line_error(code, stderr)
    assert "BLOCKS_API_KEY is not set: run `blocks devnet`" in line


# --- options and exit codes ------------------------------------------------------------------


def test_card_path_concurrency_and_json_logs(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    project = tmp_path / "project"
    write_card_project(project, UPPER, concurrency=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["--card", str(project), "--concurrency", "3", "--log-format", "json"]
    proc = _start(processes, args, elsewhere, clean_env(**network.env()))
    proc.wait_line("running (press Ctrl+C to stop)")
    client, session = _send(network, "card_agent", "card path")
    with client, session:
        assert session.wait_for_terminal(timeout=WAIT_S).state == "completed"
        assert session.download_artifact(session.list_artifacts()[0]).data == b"CARD PATH"
    proc.signal(signal.SIGINT)
    assert proc.wait() == EXIT_OK
    lines = [json.loads(line) for line in proc.lines]  # every stdout line is one JSON object
    messages = [line["message"] for line in lines]
    assert "concurrency: 3 (expected instances: 1)" in messages
    assert {"time", "ts", "level", "logger", "message", "agent"} <= set(lines[0])
    assert {line["agent"] for line in lines} == {"card_agent"}
    started = [line for line in lines if line["message"] == f"task {session.task_id} started"]
    assert started and started[0]["taskId"] == session.task_id
    output = proc.lines + proc.stderr_lines
    assert not [x for x in output if network.api_key in x or UNREDACTED.search(x)]


@pytest.mark.parametrize(
    "args",
    [
        ["--concurrency", "-1"],
        ["--log-level", "chatty"],
        ["--card", "agent-card.json", "--handler", "echo"],
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str]) -> None:
    code, _, stderr = run_to_exit(args, cwd=tmp_path, env=clean_env())
    assert code == EXIT_USAGE and "usage: blocks-run" in stderr


def test_unreachable_network_exits_3(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/config.json"
    env = clean_env(BLOCKS_CDM_URL=url, BLOCKS_API_KEY="bk_anything")
    code, _, stderr = run_to_exit(["--handler", "echo"], cwd=tmp_path, env=env)
    assert code == EXIT_UNREACHABLE, stderr
    assert "ERROR" in stderr and url.rsplit("/", 1)[0] in stderr


def test_a_refused_api_key_exits_1(network: LocalNetwork, tmp_path: Path) -> None:
    env = clean_env(BLOCKS_CDM_URL=network.cdm_url, BLOCKS_API_KEY="bk_not_a_key")
    code, _, stderr = run_to_exit(["--handler", "echo"], cwd=tmp_path, env=env)
    assert code == EXIT_FAILURE, stderr
    assert "bk_not_a_key" not in stderr
