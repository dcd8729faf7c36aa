"""In-flight tasks on one agent instance (issue 16): threads and RSS, sync vs async handlers.

Usage: python bench/async_inflight.py [--tasks 3000 20000] [--sync-tasks 3000] [--hold 5]

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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any, cast

from blocks_network.agent.artifacts import ArtifactUploader
from blocks_network.agent.async_runner import AsyncTaskRunner
from blocks_network.agent.blocking_calls import BlockingCalls
from blocks_network.agent.handler_loop import HandlerLoop
from blocks_network.agent.realtime_http import PublishOutcome, RealtimeHttp
from blocks_network.agent.scheduler import Scheduler
from blocks_network.agent.task_runner import RunnerConfig, TaskRunner
from blocks_network.agent.workers import WorkerPool
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.control import StartTask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_throughput import proc_status


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
        async_runner = AsyncTaskRunner(
            runner, config.handler, loop=HandlerLoop(), calls=BlockingCalls()
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
        r = run(mode, n, args.hold)
        print(
            f"| {r['mode']} | {r['tasks']} | {r['peak_waiting']} | {r['threads']} | "
            f"{r['rss_mb']} | {r['idle_rss_mb']} | {r['start_s']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
