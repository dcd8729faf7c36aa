"""Stream benchmarks (issue 6): agent → consumer bytes MB/s, events/s, first-byte latency.

Usage: python bench/stream_throughput.py [--mb 10] [--events 10000] [--latency-runs 10]
                                         [--max-message-size N]

Three processes on loopback, as in real use: the local network (``blocks devnet --port 0``),
the agent (this script with ``--agent``: ``start_agent_instance`` with a streaming handler)
and the consumer (this script: ``TaskClient.send_message(..., stream=True)``,
``session.wait_for_stream()``, ``ref.open()``). Only the public SDK is used.

Each stream starts with one warm-up write the consumer must receive before the measured part
begins, so the subscription is live. Throughput runs from the agent's first measured write to
the consumer holding the last byte/event (wall clock of one host). First-byte latency is the
time from one ``write()`` on an idle stream to its arrival: that includes the batching delay,
``max_latency_ms`` (250 ms by default), by design.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import cpu_seconds

AGENT = "stream_bench"
CHUNK = 64 * 1024
MAX_LATENCY_MS = 250


@contextmanager
def devnet_process() -> Iterator[dict[str, str]]:
    """``blocks devnet`` on port 0 in a subprocess; yields its BLOCKS_* environment."""
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "env"
        blocks = Path(sys.executable).with_name("blocks")
        command = [str(blocks), "devnet", "--port", "0", "--data-dir", f"{tmp}/data"]
        command += ["--env-file", str(env_file), "--long-poll-seconds", "60"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (env_file.exists() and "BLOCKS_API_KEY" in env_file.read_text()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("blocks devnet did not start")
                time.sleep(0.05)
            lines = env_file.read_text().split()
            env = dict(line.split("=", 1) for line in lines if "=" in line)
            yield {**env, "BENCH_NETWORK_PID": str(process.pid)}
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def card() -> dict[str, Any]:
    return {
        "identity": {
            "agentName": AGENT,
            "displayName": "Stream bench",
            "description": "Writes streams for the benchmark.",
            "version": "1.0.0",
            "provider": {"organization": "Bench"},
        },
        "capabilities": {"taskKinds": ["request"]},
        "io": {
            "inputs": [
                {
                    "id": "text",
                    "description": "What to stream.",
                    "contentType": "text/plain",
                    "required": True,
                }
            ],
            "outputs": [{"id": "result", "contentType": "text/plain", "guaranteed": False}],
        },
        "tags": [{"id": "bench", "name": "Bench"}],
    }


def payload_bytes(mb: int) -> bytes:
    return random.Random(6).randbytes(mb * 1024 * 1024)


# --- the agent process --------------------------------------------------------------------


def agent_main(args: argparse.Namespace) -> None:
    """Runs the agent; talks to the consumer process over stdin/stdout lines."""
    from blocks_network.agent import start_agent_instance
    from blocks_network.types import AgentInstanceOptions, StartTaskMessage, TaskContext

    payload = payload_bytes(args.mb)
    out = sys.stdout

    def say(*words: object) -> None:
        out.write(" ".join(["BENCH", *(str(w) for w in words)]) + "\n")
        out.flush()

    def handler(task: StartTaskMessage, ctx: TaskContext) -> None:
        mode = task.request_parts[0]["text"]
        stream = ctx.create_stream(format="events" if mode == "events" else "bytes")
        stream.write({"warm": True} if mode == "events" else b"w")
        stream.flush()
        sys.stdin.readline()  # the consumer got the warm-up: its subscription is live
        if mode == "bytes":
            say("start", time.time())
            for i in range(0, len(payload), CHUNK):
                stream.write(payload[i : i + CHUNK])
        elif mode == "events":
            say("start", time.time())
            for i in range(args.events):
                stream.write({"i": i, "token": "lorem"})
        else:
            for _ in range(args.latency_runs):
                say("sent", time.time())
                stream.write(b"x")
                sys.stdin.readline()
        stream.end()

    handle = start_agent_instance(
        AgentInstanceOptions(agent_name=AGENT, handler=handler, card=card(), concurrency=1)
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say("ready")
    try:
        while not stop.wait(1):
            pass
    finally:
        handle.stop(grace_s=0)


# --- the consumer process -----------------------------------------------------------------


def line(stream: IO[str]) -> list[str]:
    """The agent's next protocol line (its log lines are skipped)."""
    while True:
        text = stream.readline()
        if not text:
            raise RuntimeError("the agent process exited")
        if text.startswith("BENCH "):
            return text.split()[1:]


def consumer_main(args: argparse.Namespace) -> dict[str, float]:
    from blocks_network import TaskClient, text_part

    agent = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--agent",
            "--mb",
            str(args.mb),
            "--events",
            str(args.events),
            "--latency-runs",
            str(args.latency_runs),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG_LEVEL": "warn"},
    )
    assert agent.stdin is not None and agent.stdout is not None
    results: dict[str, float] = {}
    pids = {"network": int(os.environ["BENCH_NETWORK_PID"]), "agent": agent.pid}
    pids["consumer"] = os.getpid()

    def cpu() -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in pids.items()}

    def go() -> None:
        assert agent.stdin is not None
        agent.stdin.write("go\n")
        agent.stdin.flush()

    try:
        if line(agent.stdout) != ["ready"]:
            raise RuntimeError("the agent did not start")
        client = TaskClient.create("free", api_key=os.environ["BLOCKS_API_KEY"])
        try:
            # bytes
            with client.send_message(AGENT, [text_part("bytes")], stream=True) as session:
                chunks = session.wait_for_stream(timeout=30).open().bytes(timeout=60)
                assert next(chunks) == b"w"
                cpu_before = cpu()
                go()
                digest, size = hashlib.sha256(), 0
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                end = time.time()
                cpu_after = cpu()
                started = float(line(agent.stdout)[1])
                payload = payload_bytes(args.mb)
                assert size == len(payload) and digest.digest() == hashlib.sha256(payload).digest()
                session.wait_for_terminal(30)
            results["bytes_mb_s"] = size / (end - started) / 1e6
            results["bytes_s"] = end - started
            for name in pids:
                # CPU per MB of each process: robust to a busy machine, unlike MB/s.
                spent = cpu_after[name] - cpu_before[name]
                results[f"cpu_ms_per_mb_{name}"] = spent * 1000 / (size / 1e6)
            # events
            with client.send_message(AGENT, [text_part("events")], stream=True) as session:
                events = session.wait_for_stream(timeout=30).open().events(timeout=60)
                assert next(events) == {"warm": True}
                go()
                count = 0
                for event in events:
                    assert event["i"] == count
                    count += 1
                end = time.time()
                started = float(line(agent.stdout)[1])
                assert count == args.events
                session.wait_for_terminal(30)
            results["events_per_s"] = count / (end - started)
            results["events_s"] = end - started
            # first-byte latency
            delays: list[float] = []
            with client.send_message(AGENT, [text_part("latency")], stream=True) as session:
                chunks = session.wait_for_stream(timeout=30).open().bytes(timeout=10)
                assert next(chunks) == b"w"
                go()
                for _ in range(args.latency_runs):
                    sent = float(line(agent.stdout)[1])
                    next(chunks)
                    delays.append((time.time() - sent) * 1000)
                    go()
                session.wait_for_terminal(30)
            results["latency_median_ms"] = statistics.median(delays)
            results["latency_max_ms"] = max(delays)
        finally:
            client.destroy()
    finally:
        agent.terminate()
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=10)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument(
        "--max-message-size", type=int, default=None, help="STREAM_MAX_MESSAGE_SIZE"
    )
    parser.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:
        agent_main(args)
        return
    if args.max_message_size:
        os.environ["STREAM_MAX_MESSAGE_SIZE"] = str(args.max_message_size)
    with devnet_process() as env:
        os.environ.update(env)
        r = consumer_main(args)
    size = os.environ.get("STREAM_MAX_MESSAGE_SIZE", "16384 (default)")
    print(f"STREAM_MAX_MESSAGE_SIZE={size}")
    print(f"bytes:      {r['bytes_mb_s']:6.1f} MB/s   ({args.mb} MB in {r['bytes_s']:.2f} s)")
    cpu = ", ".join(f"{n} {r[f'cpu_ms_per_mb_{n}']:.0f}" for n in ("network", "agent", "consumer"))
    print(f"  CPU ms per MB: {cpu}")
    print(f"events:     {r['events_per_s']:8.0f} /s  ({args.events} in {r['events_s']:.2f} s)")
    print(
        f"first byte: median {r['latency_median_ms']:.1f} ms, max {r['latency_max_ms']:.1f} ms "
        f"over {args.latency_runs} writes (max_latency_ms {MAX_LATENCY_MS}; "
        f"target ≤ {MAX_LATENCY_MS + 5} ms)"
    )
    print(json.dumps({k: round(v, 2) for k, v in r.items()}))


if __name__ == "__main__":
    main()
