"""Tasks in flight survive a crash of the network: real processes, a real ``kill -9``.

The network (``blocks devnet``), the agent (``blocks-run`` in card mode) and the consumer
(this process) run apart. With 20 tasks sent (concurrency 5, the rest queued), the network
is killed while handlers run, stays down 20 s, and comes back on the same port and data
directory. Every task must end exactly once: one terminal seen by its consumer, one on its
channel, and no handler run twice.
"""

from __future__ import annotations

import collections
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocks_network.consumer import TaskClient, text_part
from blocks_network.consumer.history import fetch_history
from blocks_network.consumer.task_session import TaskSession
from blocks_network.errors import RpcError
from tests.sdk.agent.agent_process import AgentProcess
from tests.sdk.agent.devnet_process import DevnetProcess
from tests.sdk.agent.test_run_agent_cli import UNREDACTED, clean_env, write_card_project

TASKS = 20
CONCURRENCY = 5
OUTAGE_S = 20.0
#: Generous: 4 rounds of 3 s handlers, the outage, retry back-off and a loaded machine.
FINISH_WITHIN_S = 150.0

COUNTING = """
    import os
    import time

    def run(task, ctx):
        with open(os.environ["INVOCATIONS_FILE"], "a") as out:
            out.write(task.task_id + "\\n")
        time.sleep(3)
        return {"artifacts": [{"data": "done", "mimeType": "text/plain"}]}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _invocations(path: Path) -> collections.Counter[str]:
    text = path.read_text() if path.exists() else ""
    return collections.Counter(line for line in text.splitlines() if line)


def _wait_for(condition: collections.abc.Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[DevnetProcess]:
    process = DevnetProcess(_free_port(), tmp_path / "devnet", tmp_path / "devnet.log")
    yield process
    process.close()


@pytest.mark.timeout(300)
def test_every_task_ends_exactly_once_across_a_network_crash(
    tmp_path: Path, devnet: DevnetProcess
) -> None:
    env = devnet.start()
    project = tmp_path / "agent"
    write_card_project(
        project, COUNTING, concurrency=CONCURRENCY, maxPendingBacklog=50, maxRunningTimeSec=300
    )
    invocations = tmp_path / "invocations.txt"
    agent = AgentProcess(
        [], cwd=project, env=clean_env(**env, INVOCATIONS_FILE=str(invocations), LOG_LEVEL="info")
    )
    client = TaskClient.create("free", api_key=env["BLOCKS_API_KEY"], cdm_url=env["BLOCKS_CDM_URL"])
    sessions: list[TaskSession] = []
    terminals: dict[str, list[str]] = collections.defaultdict(list)
    try:
        agent.wait_line("running (press Ctrl+C to stop)")
        for i in range(TASKS):
            session = client.send_message("card_agent", [text_part(f"task {i}")])
            session.on_terminal(lambda e, tid=session.task_id: terminals[tid].append(e.state))
            sessions.append(session)
        # Kill the network while a first round of handlers runs and the rest are queued.
        _wait_for(lambda: len(_invocations(invocations)) >= CONCURRENCY, 30, "handlers to run")
        devnet.kill(signal.SIGKILL)
        time.sleep(OUTAGE_S)  # the outage itself, not a wait for a condition
        devnet.start()

        deadline = time.monotonic() + FINISH_WITHIN_S
        unfinished = []
        for session in sessions:
            try:
                session.wait_for_terminal(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                unfinished.append(session.task_id)
        # The instance re-announced its presence once the network was back.
        assert any("reconnected" in line for line in agent.lines), agent.lines[-20:]
        ran = _invocations(invocations)
        twice = {task_id: n for task_id, n in ran.items() if n > 1}
        assert not twice, f"handlers ran more than once: {twice}"
        seen_twice = {tid: states for tid, states in terminals.items() if len(states) > 1}
        assert not seen_twice, f"consumers saw these terminals more than once: {seen_twice}"
        stored: dict[str, collections.Counter[object]] = {}
        for session in sessions:
            history = fetch_history(session._client(), session.channel)
            stored[session.task_id] = collections.Counter(
                message.get("type") for _, message in history if isinstance(message, dict)
            )
        duplicated = {
            tid: kinds for tid, kinds in stored.items() if max(kinds.values(), default=0) > 1
        }
        assert not duplicated, f"events stored more than once: {duplicated}"
        report = {tid: f"handler runs {ran[tid]}, stored {dict(stored[tid])}" for tid in unfinished}
        assert not unfinished, (
            f"{len(unfinished)} of {TASKS} tasks got no terminal: {report}; handlers ran for "
            f"{len(ran)} tasks; agent log in {tmp_path / 'agent.log'}"
        )
        assert all(kinds["terminal"] == 1 for kinds in stored.values()), stored
    finally:
        for session in sessions:
            session.close()
        client.close()
        agent.close()
        # Kept for a failure's post-mortem, next to devnet.log.
        (tmp_path / "agent.log").write_text("\n".join(agent.lines + agent.stderr_lines))


def _echo(client: TaskClient, text: str, within_s: float) -> str:
    """One echo task's artifact text, sent again while no instance is online yet."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            session = client.send_message("echo", [text_part(text)])
        except RpcError as exc:
            assert "no instance is online" in str(exc) and time.monotonic() < deadline, exc
            time.sleep(0.2)
            continue
        with session:
            assert session.wait_for_terminal(timeout=max(1.0, deadline - time.monotonic()))
            return session.download_artifact(session.list_artifacts()[0]).data.decode()


@pytest.mark.timeout(120)
def test_the_builtin_echo_gets_work_again_after_the_network_restarts(
    tmp_path: Path, devnet: DevnetProcess
) -> None:
    env = devnet.start()
    # At DEBUG, so the retries' lines (with their request URLs) are checked for credentials too.
    agent = AgentProcess(
        ["--handler", "echo"], cwd=tmp_path, env=clean_env(**env, LOG_LEVEL="debug")
    )
    client = TaskClient.create("free", api_key=env["BLOCKS_API_KEY"], cdm_url=env["BLOCKS_CDM_URL"])
    host = env["BLOCKS_CDM_URL"].split("//", 1)[1].split("/", 1)[0]
    try:
        agent.wait_line("running (press Ctrl+C to stop)")
        assert _echo(client, "before", 20) == "Echoed request: before"
        devnet.kill(signal.SIGTERM)
        time.sleep(3)  # the outage itself
        devnet.start()
        # Nothing is sent to the control channel meanwhile, so its long-poll is not answered:
        # the instance must announce its state on its own, or it never gets work again.
        line = agent.wait_line("reconnected to the network", timeout=30)
        assert f"reconnected to the network at {host} after " in line
        assert _echo(client, "after", 30) == "Echoed request: after"
    finally:
        client.close()
        agent.close()
    # The outage is told once (presence, heartbeats and the control poll all failed, each
    # retried for seconds), naming the host; a request path only at DEBUG, a credential never.
    output = agent.lines + agent.stderr_lines
    warnings = [x for x in agent.stderr_lines if " WARN " in x]
    assert len(warnings) == 1, agent.stderr_lines
    assert f"lost the connection to the network at {host} (" in warnings[0]
    assert sum(" INFO  reconnected" in x for x in output) == 1, output
    assert any(" DEBUG " in x and "failed while the network is down" in x for x in output)
    assert not [x for x in output if "/v2/" in x and " DEBUG " not in x]
    assert not [x for x in output if env["BLOCKS_API_KEY"] in x or UNREDACTED.search(x)]
