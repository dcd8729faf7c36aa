"""Accepted means durable, and exactly once, across a SIGKILL of ``blocks devnet``.

Real processes: the network (``blocks devnet`` on a data dir and a fixed port), a card-mode
agent (``blocks-run``) whose handler appends each task id it runs to a file, consumers
flooding SendMessage from four threads, and the official pubnub client. The network is
killed with SIGKILL at a random moment and restarted on the same port and data dir.
"""

from __future__ import annotations

import collections
import itertools
import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

from blocks_network.protocol.constants import (
    API_PATH_RPC,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
    TERMINAL_STATES,
)
from tests.sdk.agent.agent_process import AgentProcess, clean_env, write_card_project
from tests.support.backend_client import BackendClient
from tests.support.devnet_process import Devnet, free_port
from tests.support.task_rpc import wait_until

FLOOD_THREADS = 4
WAIT_S = 60.0

#: Appends the id of every task it runs to ``$CRASH_HANDLER_LOG`` (one write per line).
COUNTING_HANDLER = """
    import os

    def run(task, ctx=None):
        with open(os.environ["CRASH_HANDLER_LOG"], "a") as log:
            log.write(task.task_id + "\\n")
        return {"artifacts": [{"data": "ok", "mimeType": "text/plain"}]}
"""


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.close()


def start_devnet(devnets: list[Devnet], port: int, data_dir: Path) -> tuple[Devnet, str]:
    """A ``blocks devnet`` serving on ``port``; returns it and its API key."""
    devnet = Devnet(["--port", str(port), "--data-dir", str(data_dir)])
    devnets.append(devnet)
    return devnet, devnet.ready_lines()["BLOCKS_API_KEY"]


class Rpc:
    """JSON-RPC calls with a consumer token on one connection (one per thread)."""

    _ids = itertools.count(1)

    def __init__(self, base_url: str, api_key: str) -> None:
        api = BackendClient(base_url)
        try:
            token = api.consumer_token(api_key)["accessToken"]
        finally:
            api.close()
        self._http = httpx.Client(
            base_url=base_url,
            timeout=10.0,
            headers={"Authorization": f"Bearer {token}", PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION},
        )

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        return dict(self._http.post(API_PATH_RPC, json=body).json())

    def close(self) -> None:
        self._http.close()


class Flood:
    """Threads sending SendMessage as fast as answers come; keeps every task id received."""

    def __init__(self, base_url: str, api_key: str, agent_name: str) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._agent_name = agent_name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.task_ids: list[str] = []
        self._threads = [
            threading.Thread(target=self._send, name=f"test-flood-{i}", daemon=True)
            for i in range(FLOOD_THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def _send(self) -> None:
        rpc = Rpc(self._base_url, self._api_key)
        params = {
            "agentName": self._agent_name,
            "billingMode": "free",
            "requestParts": [{"partId": "text", "text": "count me"}],
        }
        try:
            while not self._stop.is_set():
                try:
                    answer = rpc.call("SendMessage", params)
                except httpx.HTTPError:
                    continue  # the network is gone: nothing was accepted
                if "result" in answer:
                    with self._lock:
                        self.task_ids.append(answer["result"]["taskId"])
        finally:
            rpc.close()

    def received(self) -> int:
        with self._lock:
            return len(self.task_ids)

    def stop(self) -> list[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT_S)
        with self._lock:
            return list(self.task_ids)


def handler_runs(log: Path) -> collections.Counter[str]:
    return collections.Counter(log.read_text().split()) if log.exists() else collections.Counter()


@pytest.mark.timeout(120)
def test_every_accepted_task_survives_a_sigkill_and_no_task_runs_twice(
    tmp_path: Path, devnet_factory: list[Devnet], agents: list[AgentProcess]
) -> None:
    port, data_dir = free_port(), tmp_path / "data"
    devnet, api_key = start_devnet(devnet_factory, port, data_dir)
    base_url = f"http://127.0.0.1:{port}"
    project, handler_log = tmp_path / "agent", tmp_path / "handled.txt"
    # A terminal publish cut off by the kill is not sent again by the agent: the safety net
    # (maxRunningTimeSec) ends such a task, so every task still ends exactly once.
    write_card_project(project, COUNTING_HANDLER, concurrency=4, maxRunningTimeSec=5)
    agent = AgentProcess(
        [],
        cwd=project,
        env=clean_env(
            BLOCKS_CDM_URL=f"{base_url}/config.json",
            BLOCKS_API_KEY=api_key,
            CRASH_HANDLER_LOG=str(handler_log),
        ),
    )
    agents.append(agent)
    agent.wait_line("running (press Ctrl+C to stop)")

    flood = Flood(base_url, api_key, "card_agent")
    kill_after = random.randint(30, 150)
    wait_until(lambda: flood.received() >= kill_after, WAIT_S, f"{kill_after} accepted tasks")
    devnet.process.kill()  # SIGKILL, requests in flight
    devnet.process.wait(WAIT_S)
    accepted = flood.stop()
    ran_before_restart = handler_runs(handler_log)
    assert ran_before_restart, "the agent ran nothing before the kill: the test proves nothing"

    start_devnet(devnet_factory, port, data_dir)
    rpc = Rpc(base_url, api_key)
    try:
        states: dict[str, str] = {}
        for task_id in accepted:
            answer = rpc.call("GetTask", {"taskId": task_id})
            assert "result" in answer, f"accepted task {task_id} lost in the crash: {answer}"
            states[task_id] = answer["result"]["task"]["state"]
        # A task the agent ran had its dispatch committed before its StartTask went out.
        requeued = [t for t in ran_before_restart if states.get(t) == "queued"]
        assert not requeued, f"tasks run before the crash are queued again: {requeued}"

        def all_ended() -> bool:
            for task_id in accepted:
                if states[task_id] not in TERMINAL_STATES:
                    states[task_id] = rpc.call("GetTask", {"taskId": task_id})["result"]["task"][
                        "state"
                    ]
            return all(state in TERMINAL_STATES for state in states.values())

        try:
            wait_until(all_ended, 40, "every accepted task to end after the restart")
        except AssertionError:
            runs = handler_runs(handler_log)
            stuck = {t: (s, runs[t]) for t, s in states.items() if s not in TERMINAL_STATES}
            raise AssertionError(f"not ended (state, handler runs): {stuck}") from None
    finally:
        rpc.close()
    runs = handler_runs(handler_log)
    twice = {task_id: n for task_id, n in runs.items() if n > 1}
    assert not twice, f"handlers ran more than once: {twice}"
    completed = [t for t, state in states.items() if state == "completed"]
    assert all(runs[t] == 1 for t in completed)


def _keyset(data_dir: Path, name: str) -> tuple[str, str, str]:
    conn = sqlite3.connect(data_dir / "devnet.sqlite3")
    try:
        row = conn.execute(
            "SELECT publish_key, subscribe_key, secret_key FROM keysets WHERE name=?", (name,)
        ).fetchone()
    finally:
        conn.close()
    return str(row[0]), str(row[1]), str(row[2])


def _signed_client(port: int, keys: tuple[str, str, str], user_id: str) -> PubNub:
    config = PNConfiguration()
    config.origin = f"127.0.0.1:{port}"
    config.ssl = False
    config.publish_key, config.subscribe_key, config.secret_key = keys
    config.user_id = user_id
    config.daemon = True
    config.non_subscribe_request_timeout = 10
    return PubNub(config)


def test_a_publish_answered_200_survives_a_sigkill(
    tmp_path: Path, devnet_factory: list[Devnet]
) -> None:
    port, data_dir = free_port(), tmp_path / "data"
    devnet, _ = start_devnet(devnet_factory, port, data_dir)
    keys = _keyset(data_dir, "network")
    channel = "durability.check"
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def publish(worker: int) -> None:
        client = _signed_client(port, keys, f"publisher-{worker}")
        try:
            for n in itertools.count():
                if stop.is_set():
                    return
                try:
                    envelope = client.publish().channel(channel).message([worker, n]).sync()
                except Exception:
                    continue  # not acknowledged: may or may not be kept
                with lock:
                    acknowledged.append(int(envelope.result.timetoken))
        finally:
            client.stop()

    threads = [
        threading.Thread(target=publish, args=(i,), name=f"test-publish-{i}", daemon=True)
        for i in range(FLOOD_THREADS)
    ]
    for thread in threads:
        thread.start()
    kill_after = random.randint(50, 200)
    wait_until(
        lambda: len(acknowledged) >= kill_after, WAIT_S, f"{kill_after} acknowledged publishes"
    )
    devnet.process.kill()
    devnet.process.wait(WAIT_S)
    stop.set()
    for thread in threads:
        thread.join(WAIT_S)

    start_devnet(devnet_factory, port, data_dir)
    reader = _signed_client(port, keys, "reader")
    try:
        kept: set[int] = set()
        older_than: int | None = None
        while True:  # pages of 100, newest first; ``start`` is exclusive
            call = reader.fetch_messages().channels([channel]).maximum_per_channel(100)
            if older_than is not None:
                call = call.start(older_than)
            page = call.sync().result.channels.get(channel, [])
            if not page:
                break
            kept.update(int(m.timetoken) for m in page)
            older_than = min(int(m.timetoken) for m in page)
    finally:
        reader.stop()
    lost = sorted(set(acknowledged) - kept)
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged publishes lost: {lost[:5]}"
