"""Agent runtime throughput (issue 4): echo tasks/s through one instance, its threads and RSS.

Usage: python bench/agent_throughput.py [--seconds 10] [--concurrency 1 8 32]

Three processes, as in production: the local network (``LocalNetwork``), one agent instance
(``blocks-run`` in card mode, handler = the built-in echo, ``runtime.concurrency`` = N) and
this process, the load generator. The generator keeps N tasks in flight (closed loop): each
of N threads sends ``SendMessage`` over a keep-alive connection and waits until one shared
watcher (a long-poll over all in-flight task channels) sees the task's terminal. It is a
consumer without the SDK's per-session machinery, so the figure is the instance's (and the
network's), not the consumer SDK's (bench/consumer_roundtrip.py measures that).

Reported per N: completed tasks/s, latency p50/p99 (submit → terminal seen), and the agent
process's thread count and RSS when idle (after start-up and warm-up) and at load.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import cpu_seconds, percentile
from blocks_devnet.realtime.signing import request_signature
from blocks_network.protocol.constants import (
    API_PATH_CONSUMER_TOKEN,
    API_PATH_RPC,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
)

AGENT = "bench_echo"
NETWORK_SCRIPT = """
import json, sys, tempfile, pathlib
from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
# Removed after the network stopped (a 10,000-task run leaves ~100 MB).
with tempfile.TemporaryDirectory(prefix="bench-devnet-") as data, LocalNetwork(
    DevnetConfig(port=0, data_dir=pathlib.Path(data))
) as net:
    keyset = net.keysets["playground"]
    info = {"host": "127.0.0.1", "port": net.port, "subscribe_key": keyset.subscribe_key,
            "publish_key": keyset.publish_key, "secret_key": keyset.secret_key, **net.env()}
    print(json.dumps(info), flush=True)
    sys.stdin.read()
"""


@dataclass
class Network:
    host: str
    port: int
    env: dict[str, str]
    keys: dict[str, str]
    pid: int


@contextmanager
def network_process(script: str = NETWORK_SCRIPT, *args: str) -> Iterator[Network]:
    """Run ``script`` (printing the network's JSON line, serving until stdin closes)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        env = {k: v for k, v in info.items() if k.startswith("BLOCKS_")}
        keys = {k: info[k] for k in ("subscribe_key", "publish_key", "secret_key")}
        yield Network(info["host"], info["port"], env, keys, proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # a clean stop: commits and checkpoints
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def proc_status(pid: int) -> tuple[int, float]:
    """(threads, RSS in MB) of a process, from /proc."""
    threads, rss = 0, float("nan")
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return threads, rss


ECHO_HANDLER = "from blocks_network.handlers.echo import echo_handler as handler\n"


@contextmanager
def agent_process(
    net: Network, concurrency: int, handler_source: str = ECHO_HANDLER
) -> Iterator[subprocess.Popen[str]]:
    """``blocks-run`` in card mode for agent ``AGENT``, its handler ``handler_source``
    (``concurrency`` 0 = unlimited)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    card = {
        "identity": {
            "agentName": AGENT,
            "displayName": "Bench echo",
            "description": "Echo for the throughput benchmark.",
            "version": "1.0.0",
            "provider": {"organization": "bench"},
        },
        "capabilities": {"taskKinds": ["request"]},
        # A card's concurrency is ≥ 1; --concurrency below also takes 0 (unlimited).
        "runtime": {
            "handler": "handler.py",
            "concurrency": max(1, concurrency),
            "maxPendingBacklog": 1000,
        },
    }
    (folder / "agent-card.json").write_text(json.dumps(card))
    (folder / "handler.py").write_text(handler_source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKS_")}
    env.update(net.env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "blocks_network.cli.run_agent", "--concurrency", str(concurrency)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "running (press Ctrl+C to stop)" in line:
                break
        else:
            raise RuntimeError("the agent did not start")
        # Keep draining its log lines so the pipe never fills.
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        yield proc
    finally:
        proc.send_signal(2)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


class Watcher:
    """Completion detection for every consumer at once: one long-poll over all in-flight task
    channels, signed with the keyset's secret key (privileged, as the backend is), so telling
    that a task ended costs the network a fraction of a request instead of several polls.

    A channel added while a poll is held joins the next poll, with the cursor moved back to
    when it was added (replayed messages of other channels are ignored). If no channel of the
    held poll is still waiting, the poll is aborted so the new channel is not left behind.
    """

    def __init__(self, net: Network) -> None:
        self.net = net
        self.cond = threading.Condition()
        self.waiting: dict[str, threading.Event] = {}
        self.uncovered: dict[str, int] = {}  # channel -> timetoken it must be polled from
        self.polled: frozenset[str] = frozenset()
        self.conn: http.client.HTTPConnection | None = None
        self.cursor = int(time.time() * 10_000_000)
        self.stop = False
        self.thread = threading.Thread(target=self._run, name="bench-watcher", daemon=True)
        self.thread.start()

    def expect(self, channel: str, since_tt: int) -> threading.Event:
        done = threading.Event()
        with self.cond:
            self.waiting[channel] = done
            self.uncovered[channel] = since_tt
            stale = not (self.polled & self.waiting.keys() - {channel})
            conn = self.conn
            self.cond.notify_all()
        if stale and conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(2)  # nothing in the held poll will wake it: restart it
        return done

    def _run(self) -> None:
        keys = self.net.keys
        while not self.stop:
            with self.cond:
                while not self.waiting and not self.stop:
                    self.cond.wait(1.0)
                if self.stop:
                    return
                channels = sorted(self.waiting)
                tt = min(
                    [self.cursor, *(self.uncovered[c] for c in channels if c in self.uncovered)]
                )
                for c in channels:
                    self.uncovered.pop(c, None)
                self.polled = frozenset(channels)
                conn = self.conn = http.client.HTTPConnection(self.net.host, self.net.port)
            path = f"/v2/subscribe/{keys['subscribe_key']}/{','.join(quote(c, safe='') for c in channels)}/0"
            query = [
                ("tt", str(tt)),
                ("tr", "1"),
                ("uuid", "bench-watcher"),
                ("timestamp", str(int(time.time()))),
            ]
            signature = request_signature(
                method="GET",
                raw_path=path,
                query=query,
                body=b"",
                publish_key=keys["publish_key"],
                subscribe_key=keys["subscribe_key"],
                secret_key=keys["secret_key"],
            )
            query.append(("signature", signature))
            try:
                conn.request("GET", f"{path}?{urlencode(query, quote_via=quote)}")
                poll = json.loads(conn.getresponse().read())
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()
                continue  # aborted to add a channel
            finally:
                with self.cond:
                    self.polled = frozenset()
            if "t" not in poll:
                raise RuntimeError(f"subscribe refused: {poll}")
            with self.cond:
                self.cursor = int(poll["t"]["t"])
                for envelope in poll["m"]:
                    message = envelope["d"]
                    if isinstance(message, dict) and message.get("type") == "terminal":
                        if message.get("state") != "completed":
                            print(f"task ended {message}", file=sys.stderr)
                        done = self.waiting.pop(envelope["c"], None)
                        if done is not None:
                            done.set()
            conn.close()

    def close(self) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()


class Consumer:
    """One closed-loop consumer: SendMessage over a keep-alive connection, then wait for the
    watcher to see the terminal."""

    def __init__(self, net: Network, token: str, owner: str, watcher: Watcher) -> None:
        self.net = net
        self.token = token
        self.owner = owner
        self.watcher = watcher
        self.rpc = http.client.HTTPConnection(net.host, net.port)

    def run_one(self, text: str) -> float:
        started = time.perf_counter()
        since = int((time.time() - 0.05) * 10_000_000)
        channel = self.send(text)
        if not self.watcher.expect(channel, since).wait(30):
            raise RuntimeError(f"no terminal on {channel}")
        return (time.perf_counter() - started) * 1000

    def send(self, text: str) -> str:
        """SendMessage ``text`` to ``AGENT``; returns the task's status channel."""
        body = {
            "jsonrpc": "2.0",
            "id": f"rpc-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}",
            "method": "SendMessage",
            "params": {
                "agentName": AGENT,
                "billingMode": "free",
                "requestParts": [{"partId": "text", "text": text}],
                "ownerId": self.owner,
            },
        }
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
            PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION,
        }
        self.rpc.request("POST", API_PATH_RPC, json.dumps(body), headers)
        answer = json.loads(self.rpc.getresponse().read())
        if "result" not in answer:
            raise RuntimeError(f"SendMessage failed: {answer}")
        channel: str = answer["result"]["extensions"]["blocks"]["streamChannels"]["status"]
        return channel


def consumer_token(net: Network) -> tuple[str, str]:
    conn = http.client.HTTPConnection(net.host, net.port)
    conn.request(
        "POST",
        API_PATH_CONSUMER_TOKEN,
        json.dumps({"apiKey": net.env["BLOCKS_API_KEY"]}),
        {"Content-Type": "application/json"},
    )
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body["accessToken"], body["userId"]


def load(net: Network, concurrency: int, seconds: float, pid: int) -> dict[str, Any]:
    token, owner = consumer_token(net)
    watcher = Watcher(net)
    consumers = [Consumer(net, token, owner, watcher) for _ in range(concurrency)]
    for consumer in consumers[:1]:
        for i in range(20):  # warm-up: connections, imports, first-task paths
            consumer.run_one(f"warm {i}")
    time.sleep(0.5)
    idle_threads, idle_rss = proc_status(pid)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    samples: list[tuple[int, float]] = []

    def drive(consumer: Consumer) -> None:
        mine: list[float] = []
        n = 0
        while time.perf_counter() < stop_at:
            mine.append(consumer.run_one(f"hello {n}"))
            n += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=drive, args=(c,), name="bench-consumer") for c in consumers]
    cpu_before = {
        name: cpu_seconds(p)
        for name, p in (("network", net.pid), ("agent", pid), ("bench", os.getpid()))
    }
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.perf_counter() < stop_at:
            samples.append(proc_status(pid))
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu = {
        f"cpu_{name}_pct": round(100 * (cpu_seconds(p) - cpu_before[name]) / elapsed)
        for name, p in (("network", net.pid), ("agent", pid), ("bench", os.getpid()))
    }
    watcher.close()
    load_threads = max(s[0] for s in samples) if samples else 0
    load_rss = max(s[1] for s in samples) if samples else float("nan")
    return {
        "concurrency": concurrency,
        "tasks": len(latencies),
        "tasks_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "idle_threads": idle_threads,
        "idle_rss_mb": round(idle_rss, 1),
        "load_threads": load_threads,
        "load_rss_mb": round(load_rss, 1),
        **cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    with network_process() as net:
        for concurrency in args.concurrency:
            with agent_process(net, concurrency) as agent:
                print(json.dumps(load(net, concurrency, args.seconds, agent.pid)), flush=True)


if __name__ == "__main__":
    main()
