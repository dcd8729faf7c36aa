"""In-flight tasks on one agent instance (issue 16): threads and RSS, sync vs async handlers.

Usage: python bench/async_inflight.py [--tasks 3000 20000] [--sync-tasks 3000] [--hold 5]
       python bench/async_inflight.py --network [--tasks 3000] [--sync-tasks 3000]

Each measurement runs in a fresh child process holding one instance's task runtime (the real
``TaskRunner``, ``WorkerPool`` / ``AsyncTaskRunner``, ``HandlerLoop``, ``BlockingCalls``,
``Scheduler``, outbox and credentials), with N tasks started the way a StartTask starts them
(``TaskRunner.start``). Every handler waits ``--hold`` seconds (``await asyncio.sleep`` or
``time.sleep``), as an agent waiting on a model does. The realtime publisher is an in-memory
one that accepts every publish at once: the figure is the runtime's cost per waiting task
(threads, memory), not the network's (bench/agent_throughput.py measures that path), and a
local network cannot dispatch 20,000 tasks within one hold (~300 tasks/s).

Reported per run: the peak number of handlers waiting at once, the process's thread count
and RSS at that peak, the idle RSS before the first task, and how long starting N took.

``--network``: the whole path instead, in three processes as bench/agent_throughput.py runs
it: a local network, ``blocks-run`` (card mode, concurrency N) and this process sending N
SendMessage calls from 8 connections. Each handler waits until every one of the N has
started (on one event, released when a file appears), so the figure is the agent process's
threads and RSS with N tasks in flight, whatever the network's dispatch rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, cast

from blocks_network.agent.artifacts import ArtifactUploader
from blocks_network.agent.async_runner import AsyncTaskRunner
from blocks_network.agent.async_task_client import AgentAsyncTaskClient
from blocks_network.agent.handler_loop import HandlerLoop
from blocks_network.agent.realtime_http import PublishOutcome, RealtimeHttp
from blocks_network.agent.scheduler import Scheduler
from blocks_network.agent.task_client_proxy import LazyTaskClient
from blocks_network.agent.task_runner import RunnerConfig, TaskRunner
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.control import StartTask
from blocks_network.workers import WorkerPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_throughput import Consumer, agent_process, consumer_token, network_process, proc_status

#: The handlers of ``--network`` runs: counted in and out, waiting for one release. One
#: watcher (a coroutine or a thread, started by the first task) writes the counts to files
#: twice a second and looks for the release file, so waiting tasks cost no CPU.
NETWORK_HANDLERS = {
    "async": """
import asyncio, os

counts = {"entered": 0, "left": 0}
release = None
watchers = []  # a strong reference: the loop keeps only weak ones to its tasks

async def watch(event):
    while True:
        for name, value in counts.items():
            with open(os.environ["BENCH_" + name.upper()], "w") as f:
                f.write(str(value))
        if os.path.exists(os.environ["BENCH_RELEASE"]):
            event.set()
        await asyncio.sleep(0.5)

async def handler(task, ctx):
    global release
    if release is None:
        release = asyncio.Event()
        watchers.append(asyncio.get_running_loop().create_task(watch(release)))
    counts["entered"] += 1
    await release.wait()
    counts["left"] += 1
""",
    "sync": """
import os, threading, time

counts = {"entered": 0, "left": 0}
lock = threading.Lock()
release = threading.Event()
watcher = []

def watch():
    while True:
        for name, value in counts.items():
            with open(os.environ["BENCH_" + name.upper()], "w") as f:
                f.write(str(value))
        if os.path.exists(os.environ["BENCH_RELEASE"]):
            release.set()
        time.sleep(0.5)

def handler(task, ctx):
    with lock:
        if not watcher:
            watcher.append(threading.Thread(target=watch, daemon=True))
            watcher[0].start()
        counts["entered"] += 1
    release.wait()
    with lock:
        counts["left"] += 1
""",
}
SENDERS = 8


class _Accepted:
    """A publish the in-memory network took at once."""

    def __init__(self, message: Any) -> None:
        self.message = message

    def outcome(self) -> PublishOutcome:
        return PublishOutcome("accepted", body=b'[1,"Sent","1"]')


class _MemoryRealtime:
    """What ``TaskRunner`` calls on its realtime client, answered in memory."""

    def start_publish(self, message: Any, **_: Any) -> _Accepted:
        return _Accepted(message)

    def pipeline_publish(self, after: Any, message: Any, **_: Any) -> _Accepted:
        return _Accepted(message)

    def find_in_history(self, *_: Any, **__: Any) -> None:
        return None


class Gauge:
    """Counts handlers waiting right now and the peak, with the threads and RSS at the peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.waiting += 1
            self.peak = max(self.peak, self.waiting)

    def leave(self) -> None:
        with self.lock:
            self.waiting -= 1


def child(mode: str, tasks: int, hold: float) -> dict[str, Any]:
    logging.disable(logging.INFO)
    gauge = Gauge()

    async def async_handler(task: Any, ctx: Any) -> None:
        gauge.enter()
        try:
            await asyncio.sleep(hold)
        finally:
            gauge.leave()

    def sync_handler(task: Any, ctx: Any) -> None:
        gauge.enter()
        try:
            time.sleep(hold)
        finally:
            gauge.leave()

    keyset = Keyset(publish_key="pub", subscribe_key="sub")
    config = RunnerConfig(
        agent_name="bench_wait",
        instance_id="AG-bench_wait-1",
        handler=async_handler if mode == "async" else sync_handler,
        on_error=None,
        inline_limit=32_000,
        keyset_for=lambda env: keyset,
        environment=lambda: "playground",
        on_active_changed=lambda count, ended: None,
        task_client=lambda: None,
        task_pubnub=lambda creds: None,
    )
    pool = WorkerPool(tasks)  # concurrency = N: a sync handler needs a thread per task
    scheduler = Scheduler()
    runner = TaskRunner(
        config,
        realtime=cast(RealtimeHttp, _MemoryRealtime()),
        submit=pool.submit,
        scheduler=scheduler,
        uploader=cast(ArtifactUploader, None),
    )
    async_runner = None
    if mode == "async":
        assert config.handler is not None
        calls = BlockingCalls()
        lazy = LazyTaskClient(  # never used: the bench's handlers call no other agent
            billing_mode="free", api_key="unused", cdm_url=None, base_url=None, user_id="u"
        )
        async_runner = AsyncTaskRunner(
            runner,
            config.handler,
            loop=HandlerLoop(),
            calls=calls,
            task_client=AgentAsyncTaskClient(lazy, calls),
        )
        runner.dispatch = async_runner.dispatch
    idle_threads, idle_rss = proc_status(os.getpid())
    began = time.monotonic()
    for i in range(tasks):
        runner.start(StartTask(task_id=f"t{i:06d}", org_id="org", write_token="tok"))
    started_s = time.monotonic() - began
    # Sample until every handler waits at once or the first ones return.
    peak_threads, peak_rss, peak_waiting = 0, 0.0, 0
    deadline = time.monotonic() + hold + 60
    while time.monotonic() < deadline:
        threads, rss = proc_status(os.getpid())
        waiting = gauge.waiting
        if waiting >= peak_waiting:
            peak_threads, peak_rss, peak_waiting = threads, rss, waiting
        if waiting == tasks or (gauge.peak > 0 and waiting < gauge.peak):
            break
        time.sleep(0.05)
    assert runner.wait_idle(hold + 120), "tasks did not end"
    if async_runner is not None:
        async_runner.close()
    pool.close()
    scheduler.close()
    return {
        "mode": mode,
        "tasks": tasks,
        "peak_waiting": max(peak_waiting, gauge.peak),
        "threads": peak_threads,
        "rss_mb": round(peak_rss, 1),
        "idle_threads": idle_threads,
        "idle_rss_mb": round(idle_rss, 1),
        "start_s": round(started_s, 2),
    }


def _size(path: str) -> int:
    """The count a handler module's watcher wrote to ``path`` (0 before it wrote)."""
    try:
        with open(path) as counted:
            return int(counted.read() or 0)
    except (OSError, ValueError):
        return 0


def _wait_for(path: str, count: int, timeout: float, stall_s: float = 15.0) -> int:
    """Wait until ``count`` handlers got there, or the count stops growing for ``stall_s``
    (a StartTask the network never delivered); returns the count reached."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while (now := _size(path)) < count:
        if now != seen:
            seen, since = now, time.monotonic()
        if time.monotonic() > min(deadline, since + stall_s):
            print(f"only {now} of {count} handlers got there", file=sys.stderr)
            return now
        time.sleep(0.2)
    return now


def handler_files() -> dict[str, str]:
    """Fresh ``entered``/``release``/``left`` files for ``NETWORK_HANDLERS``, exported as
    ``BENCH_*`` so the agent started next finds them."""
    folder = tempfile.mkdtemp(prefix="bench-inflight-")
    files = {name: os.path.join(folder, name) for name in ("entered", "release", "left")}
    for name, path in files.items():
        os.environ[f"BENCH_{name.upper()}"] = path
    return files


def run_network(mode: str, tasks: int) -> dict[str, Any]:
    """N tasks in flight on a ``blocks-run`` instance, through a local network."""
    files = handler_files()
    with network_process() as net, agent_process(net, tasks, NETWORK_HANDLERS[mode]) as agent:
        time.sleep(1.0)
        idle_threads, idle_rss = proc_status(agent.pid)
        token, owner = consumer_token(net)
        began = time.monotonic()

        def send(share: int) -> None:
            consumer = Consumer(net, token, owner, watcher=None)  # type: ignore[arg-type]
            for i in range(share):
                consumer.send(f"wait {i}")

        shares = [tasks // SENDERS + (i < tasks % SENDERS) for i in range(SENDERS)]
        senders = [threading.Thread(target=send, args=(n,), daemon=True) for n in shares]
        for sender in senders:
            sender.start()
        entered = _wait_for(files["entered"], tasks, timeout=600)
        started_s = time.monotonic() - began
        time.sleep(2.0)  # every handler settled into its wait
        threads, rss = proc_status(agent.pid)
        for sender in senders:
            sender.join(30)
        with open(files["release"], "w"):
            pass
        _wait_for(files["left"], entered, timeout=120)
    return {
        "mode": f"{mode} (network)",
        "tasks": tasks,
        "peak_waiting": _size(files["entered"]),
        "threads": threads,
        "rss_mb": round(rss, 1),
        "idle_threads": idle_threads,
        "idle_rss_mb": round(idle_rss, 1),
        "start_s": round(started_s, 2),
    }


def run(mode: str, tasks: int, hold: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(tasks), str(hold)],
        check=True,
        capture_output=True,
        text=True,
        timeout=hold + 600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[3000, 20000])
    parser.add_argument("--sync-tasks", type=int, nargs="*", default=[3000])
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--network", action="store_true", help="through a local network")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "N", "HOLD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, n, hold = args.child
        print(json.dumps(child(mode, int(n), float(hold))), flush=True)
        return
    header = "| handler | N started | peak waiting | threads | RSS (MB) | idle RSS | start N (s) |"
    print(header)
    print("|" + "---|" * 7)
    runs = [("sync", n) for n in args.sync_tasks] + [("async", n) for n in args.tasks]
    for mode, n in runs:
        r = run_network(mode, n) if args.network else run(mode, n, args.hold)
        print(
            f"| {r['mode']} | {r['tasks']} | {r['peak_waiting']} | {r['threads']} | "
            f"{r['rss_mb']} | {r['idle_rss_mb']} | {r['start_s']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
