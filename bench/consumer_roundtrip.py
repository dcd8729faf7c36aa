"""Consumer round trip (issue 5): send_message → wait_for_terminal → artifact.

Usage: python bench/consumer_roundtrip.py [--tasks 1000] [--threads 16] [--parallel-tasks 2000]
       [--tls] [--api sync|async] [--hops 500]

``--tls`` runs the network as ``blocks devnet --tls`` and every client over HTTPS (trusting
its CA through ``SSL_CERT_FILE``). ``--api async`` measures the same round trip through
``AsyncTaskClient`` (issue 16): sequential awaits for p50/p99, ``--threads`` concurrent
coroutines (not threads) for tasks/s. ``--hops 0`` skips the transport floor.

Three processes, as in production: the local network (``blocks devnet``), one echo agent
instance (the SDK runtime, ``start_agent_instance`` with the built-in echo handler), and
this process as the consumer. Reported:

- round trip p50/p99 over ``--tasks`` sequential tasks on one TaskClient
  (send_message, wait_for_terminal, download the artifact, close the session);
- tasks/s with ``--threads`` consumer threads sharing one TaskClient (``--api async``:
  as many coroutines sharing one AsyncTaskClient);
- the transport floor: one publish → listener hop with the official client on the same
  server (its default HTTP layer, and the SDK's pooled one), and the round trip as a
  multiple of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pubnub.callbacks import SubscribeCallback
from pubnub.enums import PNStatusCategory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import cpu_seconds, percentile
from blocks_network import AsyncTaskClient, TaskClient, text_part
from blocks_network.config import load_cdm_config, realtime_endpoint
from blocks_network.consumer.events import TaskEvent
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import create_pubnub, set_client_config
from blocks_network.transport.pubnub_http import use_pooled_requests

AGENT_CONCURRENCY = 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def devnet_process(data_dir: Path, tls: bool = False) -> Iterator[dict[str, str]]:
    """``blocks devnet`` in its own process; yields BLOCKS_CDM_URL and BLOCKS_API_KEY (with
    ``tls``, SSL_CERT_FILE too) and the process id as ``BENCH_PID``."""
    env_file = data_dir / "devnet.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "blocks_devnet",
            "devnet",
            "--port",
            str(_free_port()),
            "--data-dir",
            str(data_dir / "devnet"),
            "--env-file",
            str(env_file),
            *(["--tls"] if tls else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("blocks devnet did not start")
            time.sleep(0.05)
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        env["BENCH_PID"] = str(process.pid)
        yield env
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_agent(concurrency: int) -> int:
    """Child mode: serve the built-in echo handler until stdin closes."""
    from blocks_network.agent.instance import start_agent_instance
    from blocks_network.handlers.echo import echo_handler
    from blocks_network.types import AgentInstanceOptions

    handle = start_agent_instance(
        AgentInstanceOptions(agent_name="echo", handler=echo_handler, concurrency=concurrency)
    )
    print("ready", flush=True)
    sys.stdin.read()
    handle["stop"]()
    return 0


@contextmanager
def agent_process(env: dict[str, str]) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--agent-child", str(AGENT_CONCURRENCY)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "LOG_LEVEL": "error"},
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the echo agent did not start")
        yield process.pid
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _checked(started: float, terminal: TaskEvent, data: bytes, text: str) -> float:
    elapsed = (time.perf_counter() - started) * 1000
    if terminal.state != "completed" or data != f"Echoed request: {text}".encode():
        raise RuntimeError(f"unexpected result {terminal.state} {data!r}")
    return elapsed


def one_task(client: TaskClient, text: str) -> float:
    started = time.perf_counter()
    with client.send_message(agent_name="echo", request_parts=[text_part(text)]) as session:
        terminal = session.wait_for_terminal(timeout=30)
        data = session.download_artifact(session.list_artifacts()[0]).data
    return _checked(started, terminal, data, text)


async def one_task_async(client: AsyncTaskClient, text: str) -> float:
    started = time.perf_counter()
    session = await client.send_message(agent_name="echo", request_parts=[text_part(text)])
    async with session:
        terminal = await session.wait_for_terminal(timeout=30)
        data = (await session.download_artifact((await session.list_artifacts())[0])).data
    return _checked(started, terminal, data, text)


def round_trips(client: TaskClient, count: int) -> list[float]:
    return [one_task(client, f"rt-{i}") for i in range(count)]


async def round_trips_async(client: AsyncTaskClient, count: int) -> list[float]:
    return [await one_task_async(client, f"rt-{i}") for i in range(count)]


def throughput(client: TaskClient, threads: int, total: int) -> float:
    counter = iter(range(total))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                one_task(client, f"tp-{i}")
            except BaseException as exc:
                errors.append(exc)
                return

    pool = [threading.Thread(target=worker, name=f"bench-consumer-{n}") for n in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} worker(s) failed: {errors[0]!r}")
    return total / elapsed


async def throughput_async(client: AsyncTaskClient, workers: int, total: int) -> float:
    """As :func:`throughput` with ``workers`` coroutines on one event loop."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:  # one shared iterator: each task is taken once
            await one_task_async(client, f"tp-{i}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return total / (time.perf_counter() - started)


Snapshot = Callable[[], list[float]]
#: What one API's run returns: sequential round trips (ms), tasks/s, CPU snapshots.
Figures = tuple[list[float], float, list[list[float]]]


def measure_sync(env: dict[str, str], args: argparse.Namespace, snapshot: Snapshot) -> Figures:
    client = TaskClient.create("free", api_key=env["BLOCKS_API_KEY"], cdm_url=env["BLOCKS_CDM_URL"])
    try:
        round_trips(client, 50)  # warm-up
        marks = [snapshot()]
        rtt = round_trips(client, args.tasks)
        marks.append(snapshot())
        rate = throughput(client, args.threads, args.parallel_tasks)
        marks.append(snapshot())
    finally:
        client.destroy()
    return rtt, rate, marks


async def measure_async(
    env: dict[str, str], args: argparse.Namespace, snapshot: Snapshot
) -> Figures:
    client = await AsyncTaskClient.create(
        "free", api_key=env["BLOCKS_API_KEY"], cdm_url=env["BLOCKS_CDM_URL"]
    )
    async with client:
        await round_trips_async(client, 50)  # warm-up
        marks = [snapshot()]
        rtt = await round_trips_async(client, args.tasks)
        marks.append(snapshot())
        rate = await throughput_async(client, args.threads, args.parallel_tasks)
        marks.append(snapshot())
    return rtt, rate, marks


MEASURES: dict[str, Callable[[dict[str, str], argparse.Namespace, Snapshot], Any]] = {
    "sync": measure_sync,
    "async": lambda env, args, snapshot: asyncio.run(measure_async(env, args, snapshot)),
}


class _Arrivals(SubscribeCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.arrived: queue.Queue[float] = queue.Queue()
        self.connected = threading.Event()

    def status(self, pubnub: Any, status: Any) -> None:
        if status.category == PNStatusCategory.PNConnectedCategory:
            self.connected.set()

    def message(self, pubnub: Any, message: Any) -> None:
        self.arrived.put(time.perf_counter())

    def presence(self, pubnub: Any, presence: Any) -> None:
        pass


def transport_floor(cdm_url: str, count: int, pooled: bool) -> list[float]:
    """publish → listener with the official client on the network's playground keyset.

    The keysets enforce access tokens, so both clients sign their requests with the secret
    key (fully privileged, as the backend's own clients would be).
    """
    http = HttpClient()
    cdm = load_cdm_config(cdm_url, http)
    keyset = cdm.playground
    endpoint = realtime_endpoint(cdm)
    secret = os.environ.get("BENCH_SECRET_KEY")
    clients = []
    for user in ("floor-sub", "floor-pub"):
        client = create_pubnub(
            subscribe_key=keyset.subscribe_key,
            publish_key=keyset.publish_key,
            user_id=user,
            endpoint=endpoint,
        )
        set_client_config(client, secret_key=secret)  # past the config lock
        clients.append(use_pooled_requests(client, http) if pooled else client)
    subscriber, publisher = clients
    listener = _Arrivals()
    subscriber.add_listener(listener)
    channel = f"floor-{pooled}-{time.time_ns()}"
    subscriber.subscribe().channels([channel]).execute()
    if not listener.connected.wait(10):
        raise RuntimeError("floor subscriber did not connect")
    hops = []
    try:
        for i in range(count):
            started = time.perf_counter()
            publisher.publish().channel(channel).message({"i": i}).use_post(True).sync()
            hops.append((listener.arrived.get(timeout=10) - started) * 1000)
    finally:
        subscriber.stop()
        publisher.stop()
        http.close()
    return hops


def _keyset_secret(data_dir: Path) -> str:
    """The playground secret key, read from the network's database (bench only)."""
    import sqlite3

    db = sqlite3.connect(data_dir / "devnet" / "devnet.sqlite3")
    try:
        row = db.execute("SELECT secret_key FROM keysets WHERE name='playground'").fetchone()
    finally:
        db.close()
    if row is None:
        raise RuntimeError("no playground keyset found")
    return str(row[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--parallel-tasks", type=int, default=2000)
    parser.add_argument("--hops", type=int, default=500)
    parser.add_argument("--tls", action="store_true", help="serve and connect over HTTPS")
    parser.add_argument("--api", choices=sorted(MEASURES), default="sync")
    parser.add_argument("--agent-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent_child is not None:
        return run_agent(args.agent_child)

    with tempfile.TemporaryDirectory() as tmp, devnet_process(Path(tmp), args.tls) as env:
        os.environ["BENCH_SECRET_KEY"] = _keyset_secret(Path(tmp))
        if "SSL_CERT_FILE" in env:
            os.environ["SSL_CERT_FILE"] = env["SSL_CERT_FILE"]  # this process's clients
        with agent_process(env) as agent_pid:
            pids = (int(env["BENCH_PID"]), agent_pid, os.getpid())
            figures: Figures = MEASURES[args.api](
                env, args, lambda: [cpu_seconds(pid) for pid in pids]
            )
        floors = [
            transport_floor(env["BLOCKS_CDM_URL"], args.hops, pooled) if args.hops else []
            for pooled in (False, True)
        ]
    report(args, figures, floors)
    return 0


def report(args: argparse.Namespace, figures: Figures, floors: Sequence[list[float]]) -> None:
    rtt, rate, (before, middle, after) = figures
    concurrent = f"{args.threads} {'coroutines' if args.api == 'async' else 'threads'}"
    p50, p99 = percentile(rtt, 50), percentile(rtt, 99)
    print(f"{args.api} API, round trip over {args.tasks} tasks: p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    print(f"throughput, {concurrent}: {rate:.0f} tasks/s")
    for phase, start, end, count in (
        ("sequential", before, middle, args.tasks),
        (concurrent, middle, after, args.parallel_tasks),
    ):
        network, agent, consumer = (1000 * (b - a) / count for a, b in zip(start, end, strict=True))
        print(
            f"CPU per task, {phase}: network {network:.2f} ms, agent {agent:.2f} ms, "
            f"consumer {consumer:.2f} ms (sum {network + agent + consumer:.2f} ms)"
        )
    if not floors[0]:
        return
    floor, floor_pooled = floors
    f50, fp50 = percentile(floor, 50), percentile(floor_pooled, 50)
    print(
        f"transport floor (publish → listener): official client p50 {f50:.2f} ms "
        f"(p99 {percentile(floor, 99):.2f}); with the SDK's pooled HTTP p50 {fp50:.2f} ms"
    )
    print(
        f"round trip = {p50 / f50:.1f}x the official-client hop, {p50 / fp50:.1f}x the pooled hop"
    )


if __name__ == "__main__":
    sys.exit(main())
