"""``blocks-run`` as users run it: card mode, built-ins, .env, signals, bad files."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.consumer import TaskClient, text_part
from tests.sdk.agent.agent_process import AgentProcess, clean_env, run_to_exit, write_card_project
from tests.sdk.agent.conftest import fast_safety_net

WAIT_S = 20.0


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


def test_sigterm_cancels_what_outlives_the_grace_period(
    network: LocalNetwork, tmp_path: Path, processes: list[AgentProcess]
) -> None:
    write_card_project(tmp_path, SLOW)
    env = clean_env(**network.env(), AGENT_SHUTDOWN_GRACE_SEC="0.3")
    proc = _start(processes, [], tmp_path, env)
    proc.wait_line("running")
    client, session = _send(network, "card_agent", "30")
    with client, session:
        assert _wait_running(session)
        began = time.monotonic()
        proc.signal(signal.SIGTERM)
        terminal = session.wait_for_terminal(timeout=WAIT_S)
        assert (terminal.state, terminal.data.get("reason")) == ("canceled", "instance_shutdown")
    assert proc.wait() == 0
    assert time.monotonic() - began < 10


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
    assert code == 1
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_registry_file(tmp_path: Path) -> None:
    code, _, stderr = run_to_exit(
        ["--registry", "nope.json", "--handler", "echo"], cwd=tmp_path, env=clean_env()
    )
    assert _one_line_error(code, stderr).startswith("error: nope.json: file not found")


def test_no_card_and_no_handler_says_it_runs_the_builtin_echo(tmp_path: Path) -> None:
    code, _, stderr = run_to_exit([], cwd=tmp_path, env=clean_env())
    note, error = stderr.splitlines()  # no API key here: the note, then the start-up error
    assert note == (
        "[agent] no agent-card.json here and no --handler: running the built-in echo handler"
    )
    assert code == 1 and error.startswith("error: BLOCKS_API_KEY is not set")


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
    assert code == 1 and "Traceback" in stderr


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
