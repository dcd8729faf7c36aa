"""A consumer with N open TaskClient sessions, sync and async (issue 16): threads, sockets,
RSS, and the time from a terminal's publish to the consumer seeing it (p50/p99).

Usage: python bench/consumer_open_sessions.py [--sessions 1000 10000] [--api sync async]
       [--senders 8] [--gc-freeze]

Three processes per run, as bench/async_inflight.py ``--network`` runs them: a local network
(``LocalNetwork``, plain HTTP on loopback), one ``blocks-run`` instance (card mode,
``concurrency`` 0 = unlimited, so the network never queues or refuses a task: no backlog is
involved) whose async handler holds every task until a release file appears, and a consumer
process:

- ``--api sync``: one ``TaskClient``; ``send_message`` N times from ``--senders`` threads
  (joined before measuring), ``on_terminal`` callbacks record when each terminal is seen;
- ``--api async``: one ``AsyncTaskClient``; ``asyncio.gather`` of N ``send_message`` calls,
  at most ``--senders`` at once, and one ``wait_for_terminal`` coroutine per session.

Once every handler holds its task and every session has seen its ``progress running`` event
(its subscription delivers), and the consumer's connections stopped changing, the consumer
reports its threads, sockets, TCP connections to the network's port (RPC connections
included: the network serves both on one port) and RSS. Then it releases the agent. Latency
per session: the wall-clock time the terminal was seen minus the terminal's timetoken (the
network's publish time, 100 ns units; all processes share the clock); and the time from the
first terminal's publish until every terminal was seen.

``--gc-freeze``: the consumer calls ``gc.freeze()`` once its sessions are held. Without it a
full collection (every object of 10,000 sessions) can stall the process for several hundred
ms while the terminals arrive (see bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import cpu_seconds, percentile
from agent_throughput import AGENT, agent_process, network_process, proc_status
from async_inflight import NETWORK_HANDLERS, _wait_for, handler_files
from blocks_network import AsyncTaskClient, TaskClient, TaskEvent, TaskSession, text_part
from open_sessions import _sockets

#: Generous bounds for a 2-core machine shared with other work.
OPEN_TIMEOUT_S = 900.0
TERMINAL_TIMEOUT_S = 600.0


def _tcp_to(port: int) -> int:
    """Established TCP connections of this process whose remote port is ``port``."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port and inode in mine:
                    count += 1
    return count


class Probe:
    """The consumer process's own figures, from /proc."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.baseline = self.sample()
        self.deadline = time.monotonic() + OPEN_TIMEOUT_S

    def sample(self) -> dict[str, float]:
        threads, rss = proc_status(os.getpid())
        return {"threads": threads, "sockets": _sockets(), "tcp": _tcp_to(self.port), "rss": rss}

    def step(
        self, states: list[str | None], previous: dict[str, float] | None
    ) -> tuple[bool, dict[str, float] | None]:
        """One check of "held": every session saw ``running`` and the connection counts
        equal ``previous``'s. Returns whether held, and the sample to pass next time."""
        if time.monotonic() > self.deadline:
            raise RuntimeError("the sessions did not all see their task running in time")
        if any(state != "running" for state in states):
            return False, None
        now = self.sample()
        same = previous is not None and all(now[k] == previous[k] for k in ("sockets", "tcp"))
        return same, now

    def report(self, held: dict[str, float]) -> dict[str, Any]:
        base = self.baseline
        names = Counter(re.sub(r"[-_]?\d+.*", "", t.name) for t in threading.enumerate())
        return {
            "threads": held["threads"],
            "thread_names": dict(names),
            "threads_before_sessions": base["threads"],
            "sockets": held["sockets"],
            "tcp_to_network": held["tcp"],
            "rss_mb": round(held["rss"], 1),
            "rss_added_mb": round(held["rss"] - base["rss"], 1),
        }


class Seen:
    """When each session saw its terminal, against the terminal's timetoken."""

    def __init__(self, count: int) -> None:
        self.lock = threading.Lock()
        self.lags_ms: list[float] = []
        self.timetokens: list[int] = []
        self.last = 0.0
        self.count = count
        self.all_seen = threading.Event()
        # Collector pauses while terminals arrive (a full one stalls every thread).
        self.gc_pauses: list[tuple[int, float]] = []
        self._gc_started = 0.0
        self.cpu_at_release = 0.0
        self.load_1m = 0.0

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            pause_ms = (time.perf_counter() - self._gc_started) * 1000
            self.gc_pauses.append((info["generation"], pause_ms))

    def record(self, event: TaskEvent) -> None:
        now = time.time()
        if event.timetoken is None:
            raise RuntimeError(f"terminal without a timetoken: {event.data}")
        with self.lock:
            self.lags_ms.append((now - event.timetoken / 1e7) * 1000)
            self.timetokens.append(event.timetoken)
            self.last = max(self.last, now)
            if len(self.lags_ms) == self.count:
                self.all_seen.set()

    def release(self) -> None:
        """The agent's handlers see the file within 0.5 s (NETWORK_HANDLERS' watcher)."""
        self.load_1m = os.getloadavg()[0]
        self.cpu_at_release = cpu_seconds(os.getpid())
        gc.callbacks.append(self._gc)
        Path(os.environ["BENCH_RELEASE"]).touch()

    def report(self) -> dict[str, Any]:
        gc.callbacks.remove(self._gc)
        lags = self.lags_ms
        first_tt, last_tt = min(self.timetokens) / 1e7, max(self.timetokens) / 1e7
        return {
            "terminals_seen": len(lags),
            "lag_p50_ms": round(percentile(lags, 50), 1),
            "lag_p99_ms": round(percentile(lags, 99), 1),
            "lag_max_ms": round(max(lags), 1),
            "terminals_published_over_s": round(last_tt - first_tt, 2),
            "first_published_to_all_seen_s": round(self.last - first_tt, 2),
            "consumer_cpu_s": round(cpu_seconds(os.getpid()) - self.cpu_at_release, 2),
            "full_gc_runs": sum(generation == 2 for generation, _ in self.gc_pauses),
            "longest_gc_ms": round(max((ms for _, ms in self.gc_pauses), default=0.0), 1),
            "load_1m": round(self.load_1m, 1),
        }


def _held(probe: Probe, sessions: Sequence[TaskSession]) -> dict[str, float]:
    """Block until ``probe.step`` says the sessions are held; returns the last sample."""
    previous: dict[str, float] | None = None
    while True:
        time.sleep(1.0)
        held, previous = probe.step([s.state for s in sessions], previous)
        if held and previous is not None:
            return previous


def _handshake(held: dict[str, Any]) -> None:
    """Tell the bench the sessions are held; wait for it to say go (it samples the others).
    With ``--gc-freeze``, the objects alive now leave the collector's generations first."""
    if os.environ.get("BENCH_GC_FREEZE") == "1":
        gc.freeze()
    print(json.dumps(held), flush=True)
    if sys.stdin.readline().strip() != "go":
        raise RuntimeError("the bench did not say go")


def consume_sync(n: int, senders: int, port: int) -> dict[str, Any]:
    client = TaskClient.create("free")
    try:
        probe = Probe(port)
        seen = Seen(n)
        opened = time.perf_counter()
        with ThreadPoolExecutor(senders, thread_name_prefix="bench-send") as pool:
            sessions = list(
                pool.map(lambda i: client.send_message(AGENT, [text_part(f"hold {i}")]), range(n))
            )
        held = _held(probe, sessions)
        result = {"open_s": round(time.perf_counter() - opened, 1), **probe.report(held)}
        for session in sessions:
            session.on_terminal(seen.record)
        _handshake(result)
        seen.release()
        if not seen.all_seen.wait(TERMINAL_TIMEOUT_S):
            raise RuntimeError(f"only {len(seen.lags_ms)} of {n} terminals seen")
        result.update(seen.report())
        result["threads_after"] = proc_status(os.getpid())[0]
        return result
    finally:
        client.destroy()


async def consume_async(n: int, senders: int, port: int) -> dict[str, Any]:
    async with await AsyncTaskClient.create("free") as client:
        probe = Probe(port)
        seen = Seen(n)
        limit = asyncio.Semaphore(senders)

        async def send(i: int) -> Any:
            async with limit:
                return await client.send_message(AGENT, [text_part(f"hold {i}")])

        opened = time.perf_counter()
        sessions = await asyncio.gather(*(send(i) for i in range(n)))
        # Waiting on the loop: the sessions' events arrive through the poll loop's thread.
        previous: dict[str, float] | None = None
        while True:
            await asyncio.sleep(1.0)
            held, previous = probe.step([s.state for s in sessions], previous)
            if held and previous is not None:
                break
        result = {"open_s": round(time.perf_counter() - opened, 1), **probe.report(previous)}

        async def terminal(session: Any) -> None:
            seen.record(await session.wait_for_terminal(timeout=TERMINAL_TIMEOUT_S))

        waiters = [asyncio.ensure_future(terminal(s)) for s in sessions]
        _handshake(result)  # blocks the loop briefly, before any terminal can exist
        seen.release()
        await asyncio.gather(*waiters)
        result.update(seen.report())
        result["threads_after"] = proc_status(os.getpid())[0]
        for session in sessions:
            await session.close()
        return result


def consumer_child(api: str, n: int, senders: int, port: int) -> None:
    if api == "sync":
        result = consume_sync(n, senders, port)
    else:
        result = asyncio.run(consume_async(n, senders, port))
    print(json.dumps(result), flush=True)


def run(api: str, n: int, senders: int) -> dict[str, Any]:
    """One measurement: a fresh network, agent and consumer process."""
    files = handler_files()
    with network_process() as net, agent_process(net, 0, NETWORK_HANDLERS["async"]) as agent:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKS_")}
        env.update(net.env)
        env["LOG_LEVEL"] = "error"
        consumer = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--consumer-child",
                api,
                str(n),
                str(senders),
                str(net.port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert consumer.stdout is not None and consumer.stdin is not None
            line = consumer.stdout.readline()
            if not line:
                raise RuntimeError("the consumer failed before holding its sessions")
            held = json.loads(line)
            if _wait_for(files["entered"], n, timeout=60) < n:
                raise RuntimeError("not every task reached the agent's handler")
            agent_threads, agent_rss = proc_status(agent.pid)
            network_rss = proc_status(net.pid)[1]
            cpu_before = (cpu_seconds(net.pid), cpu_seconds(agent.pid))
            consumer.stdin.write("go\n")
            consumer.stdin.flush()
            done = json.loads(consumer.stdout.readline())
            network_cpu, agent_cpu = (
                round(cpu_seconds(pid) - before, 2)
                for pid, before in zip((net.pid, agent.pid), cpu_before, strict=True)
            )
            consumer.wait(120)
        finally:
            if consumer.poll() is None:
                consumer.kill()
    return {
        "api": api,
        "sessions": n,
        "gc_freeze": os.environ["BENCH_GC_FREEZE"] == "1",
        **held,
        **done,
        "agent_threads": agent_threads,
        "agent_rss_mb": round(agent_rss, 1),
        "network_rss_mb": round(network_rss, 1),
        "network_cpu_s": network_cpu,  # from release until every terminal was seen
        "agent_cpu_s": agent_cpu,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sessions", type=int, nargs="+", default=[1000, 10000], help="open sessions per run"
    )
    parser.add_argument(
        "--api", choices=["sync", "async"], nargs="+", default=["sync", "async"], help="client"
    )
    parser.add_argument("--senders", type=int, default=8, help="send_message calls at once")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() in the consumer once its sessions are held (no full collection "
        "walks them while terminals arrive)",
    )
    parser.add_argument("--consumer-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consumer_child:
        api, n, senders, port = args.consumer_child
        consumer_child(api, int(n), int(senders), int(port))
        return
    os.environ["BENCH_GC_FREEZE"] = "1" if args.gc_freeze else "0"  # read by the consumer
    # 10,000 sessions are 10,000 sockets in the consumer and the network (which inherit it).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for n in args.sessions:
        for api in args.api:
            print(json.dumps(run(api, n, args.senders)), flush=True)


if __name__ == "__main__":
    main()
