"""A killed instance stops getting work within seconds; the network reconciles after a restart.

Agents are ``blocks-run`` processes, killed with SIGKILL; the network is a real local one
(restarted on the same port and data directory).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.backend.tasks.store import TaskRecord
from blocks_devnet.network import LocalNetwork
from blocks_network.consumer import TaskClient, text_part
from blocks_network.errors import RpcError
from tests.sdk.agent.agent_process import AgentProcess, clean_env, write_card_project
from tests.sdk.agent.conftest import devnet_config
from tests.sdk.agent.test_run_agent_cli import SLOW
from tests.support.task_rpc import wait_until

WAIT_S = 30.0
#: Restart verdicts wait for the startup grace (12 s) first.
RESTART_WAIT_S = 45.0


class Restartable:
    """A local network on one data directory, stopped and started on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.network = LocalNetwork(devnet_config(data_dir)).start()
        self.port = self.network.port
        self.processes: list[AgentProcess] = []

    def stop(self) -> None:
        self.network.stop()

    def start(self) -> None:
        self.network = LocalNetwork(devnet_config(self.data_dir, port=self.port)).start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> TaskClient:
        network = self.network
        return TaskClient.create("free", api_key=network.api_key, cdm_url=network.cdm_url)

    def run_agent(self, cwd: Path, *args: str) -> tuple[AgentProcess, str]:
        """A ``blocks-run`` process, once it serves; returns it and its instance id."""
        proc = AgentProcess(list(args), cwd=cwd, env=clean_env(**self.network.env()))
        self.processes.append(proc)
        instance_id = proc.wait_line("instance ID").split("instance ID: ")[1].strip()
        proc.wait_line("running")
        return proc, instance_id

    def record(self, task_id: str) -> TaskRecord:
        network = self.network
        record = network.call(lambda: network.context.tasks.store.get(task_id))
        assert record is not None
        return record

    def wait_state(self, task_id: str, state: str) -> None:
        wait_until(lambda: self.record(task_id).state == state, WAIT_S, f"{task_id} {state}")

    def wait_end(self, task_id: str) -> TaskRecord:
        def ended() -> TaskRecord | None:
            record = self.record(task_id)
            return record if record.terminal else None

        record = wait_until(ended, RESTART_WAIT_S, f"{task_id} to end")
        assert record is not None
        return record

    def live_instances(self, agent_name: str) -> frozenset[str]:
        network = self.network

        def read() -> frozenset[str]:
            agent = network.context.registry.get(agent_name)
            assert agent is not None
            return network.context.tasks.live_instances(agent.environment, agent.agent_id)

        return network.call(read)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Restartable]:
    restartable = Restartable(tmp_path / "devnet")
    yield restartable
    for proc in restartable.processes:
        proc.close()
    restartable.stop()


def send(client: TaskClient, agent: str, text: str, deadline: float | None = None) -> Any:
    """Send one task; with ``deadline``, retry while no instance is back online."""
    while True:
        try:
            return client.send_message(agent, [text_part(text)])
        except RpcError as exc:
            if deadline is None or time.monotonic() > deadline:
                raise
            if "no instance is online" not in str(exc):
                raise
            time.sleep(0.2)


def card_project(tmp_path: Path, concurrency: int) -> Path:
    project = tmp_path / "card"
    project.mkdir()
    write_card_project(project, SLOW, concurrency=concurrency)
    return project


def test_killed_instance_gets_no_more_work_and_its_tasks_are_failed_or_moved(
    net: Restartable, tmp_path: Path
) -> None:
    project = card_project(tmp_path, concurrency=2)
    by_id = {instance_id: proc for proc, instance_id in (net.run_agent(project) for _ in "ab")}
    victim_id, survivor_id = sorted(by_id)  # ties go to the smaller id
    victim = by_id[victim_id]
    with net.client() as client:
        doomed = send(client, "card_agent", "120")
        net.wait_state(doomed.task_id, "running")
        busy = send(client, "card_agent", "120")
        net.wait_state(busy.task_id, "running")
        assert net.record(doomed.task_id).instance_id == victim_id
        assert net.record(busy.task_id).instance_id == survivor_id
        # Frozen, the victim still holds its poll: the next task is handed to it and never
        # started there. Then it is killed.
        os.kill(victim.proc.pid, signal.SIGSTOP)
        stranded = send(client, "card_agent", "0")
        assert net.record(stranded.task_id).instance_id == victim_id
        victim.kill()
        victim.wait()

        wait_until(lambda: victim_id not in net.live_instances("card_agent"), WAIT_S, "detection")
        # Its running task fails with a reason, long before presence would time it out.
        terminal = doomed.wait_for_terminal(timeout=WAIT_S)
        assert terminal.state == "failed"
        assert terminal.data["error"] == f"agent instance {victim_id} went offline"
        # The task it never started went to the survivor and completed there.
        assert stranded.wait_for_terminal(timeout=WAIT_S).state == "completed"
        assert stranded.download_artifact(stranded.list_artifacts()[0]).data == b"done"
        assert net.record(stranded.task_id).instance_id == survivor_id
        # Nothing sent now goes to the dead instance.
        late = send(client, "card_agent", "0")
        assert net.record(late.task_id).instance_id == survivor_id
        assert late.wait_for_terminal(timeout=WAIT_S).state == "completed"
        assert net.record(busy.task_id).state == "running"


def test_restart_fails_running_tasks_whose_instance_did_not_come_back(
    net: Restartable, tmp_path: Path
) -> None:
    proc, instance_id = net.run_agent(card_project(tmp_path, concurrency=1))
    with net.client() as client:
        task_id = send(client, "card_agent", "120").task_id
    net.wait_state(task_id, "running")
    proc.kill()
    proc.wait()
    net.restart()
    record = net.wait_end(task_id)
    assert (record.state, record.error) == ("failed", f"agent instance {instance_id} went offline")


def test_restart_keeps_a_task_its_instance_still_runs(net: Restartable, tmp_path: Path) -> None:
    _, instance_id = net.run_agent(card_project(tmp_path, concurrency=1))
    with net.client() as client:
        # Longer than the startup grace: an "offline" verdict would come before its end.
        task_id = send(client, "card_agent", "20").task_id
    net.wait_state(task_id, "running")
    net.restart()
    wait_until(lambda: instance_id in net.live_instances("card_agent"), WAIT_S, "reconnect")
    record = net.wait_end(task_id)
    assert (record.state, record.error) == ("completed", None)


def test_probes_complete_across_five_restarts(net: Restartable, tmp_path: Path) -> None:
    net.run_agent(tmp_path, "--handler", "echo")
    net.run_agent(card_project(tmp_path, concurrency=2))
    for round_ in range(6):
        if round_:
            net.restart()
        probe(net, round_)


def test_a_terminal_held_through_an_outage_completes_and_frees_the_only_slot(
    net: Restartable, tmp_path: Path
) -> None:
    net.run_agent(tmp_path, "--handler", "echo")
    card_proc, _ = net.run_agent(card_project(tmp_path, concurrency=1))
    with net.client() as client:
        stranded = send(client, "card_agent", "0.5").task_id
    net.wait_state(stranded, "running")
    net.stop()
    # The outage lasts until the instance is done with the task: its terminal waits in the
    # outbox, and the instance keeps counting the task active until the network takes it.
    wait_until(lambda: logged(card_proc, f"task {stranded} ended"), WAIT_S, "the held terminal")
    net.start()
    # The network does not fail the task as lost: the held terminal completes it ...
    record = net.wait_end(stranded)
    assert (record.state, record.error) == ("completed", None), record
    # ... and the instance's only slot is free again for the probe.
    probe(net, 1)


def logged(proc: AgentProcess, text: str) -> bool:
    return any(text in line for line in proc.lines + proc.stderr_lines)


def probe(net: Restartable, round_: int) -> None:
    """One echo and one card task, sent as soon as the instances are back; both complete."""
    deadline = time.monotonic() + RESTART_WAIT_S
    with net.client() as client:
        echo = send(client, "echo", f"probe {round_}", deadline)
        card = send(client, "card_agent", "0", deadline)
        for session in (echo, card):
            terminal = session.wait_for_terminal(timeout=RESTART_WAIT_S)
            assert terminal.state == "completed", (round_, terminal.data)
        assert echo.download_artifact(echo.list_artifacts()[0]).data == (
            f"Echoed request: probe {round_}".encode()
        )
