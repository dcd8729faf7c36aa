"""Task dispatch benchmark (issue 3): SendMessage → StartTask at a subscribed instance, RPC/s.

Usage: python bench/backend_dispatch.py [--tasks 500] [--calls 2000]

``blocks devnet`` runs in its own process; this process plays consumer and agent instance.
Measured, each over ``--tasks`` sequential tasks:

- ``raw``: the RPC over a keep-alive ``http.client`` connection and the instance's control
  channel long-poll over raw HTTP: the backend's own share of the hop (target p50 ≤ 3 ms);
- ``official``: the same, with the instance subscribed through the official pubnub client
  (which adds its own thread hand-offs, see the realtime section of bench/RESULTS.md).

RPC calls/s: sequential GetTask and SendMessage calls on one keep-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
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
from urllib.parse import quote, urlsplit

from pubnub.callbacks import SubscribeCallback
from pubnub.enums import PNStatusCategory
from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import percentile
from blocks_network.protocol.constants import (
    API_PATH_AGENT_CONNECT,
    API_PATH_CONSUMER_TOKEN,
    API_PATH_REGISTRY_AGENTS,
    API_PATH_RPC,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
)
from blocks_network.protocol.control import control_filter_expression

AGENT = "bench_agent"
CARD = {
    "identity": {
        "agentName": AGENT,
        "displayName": "Bench",
        "description": "Dispatch benchmark agent.",
        "version": "1.0.0",
        "provider": {"organization": "bench"},
    },
    "capabilities": {"taskKinds": ["request"]},
    "runtime": {"handler": "./h.py", "concurrency": 1},
}


@dataclass
class Devnet:
    host: str
    port: int
    api_key: str
    cdm: dict[str, Any]


@contextmanager
def devnet_process(data_dir: str) -> Iterator[Devnet]:
    code = "import sys; from blocks_network.cli.blocks import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "devnet", "--port", "0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        env: dict[str, str] = {}
        while "BLOCKS_API_KEY" not in env or "BLOCKS_CDM_URL" not in env:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("blocks devnet did not start")
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                env[key] = value
        url = urlsplit(env["BLOCKS_CDM_URL"])
        assert url.hostname is not None and url.port is not None
        conn = http.client.HTTPConnection(url.hostname, url.port)
        conn.request("GET", url.path)
        cdm = json.loads(conn.getresponse().read())
        conn.close()
        yield Devnet(url.hostname, url.port, env["BLOCKS_API_KEY"], cdm)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


class Http:
    """One keep-alive connection speaking the backend's JSON."""

    def __init__(self, net: Devnet) -> None:
        self.conn = http.client.HTTPConnection(net.host, net.port)

    def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request("POST", path, json.dumps(body), headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())


def rpc_body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": f"rpc-{uuid.uuid4().hex[:8]}",
        "method": method,
        "params": params,
    }


def send_params() -> dict[str, Any]:
    return {
        "agentName": AGENT,
        "billingMode": "free",
        "requestParts": [{"partId": "text", "text": "hi"}],
        "ownerId": "",
    }


def connect_instance(net: Devnet, http: Http) -> dict[str, Any]:
    instance_id = f"AG-{AGENT}-{uuid.uuid4()}"
    status, body = http.post(
        API_PATH_AGENT_CONNECT,
        {
            "agentName": AGENT,
            "instanceId": instance_id,
            "billingMode": "free",
            "protocolVersions": [PROTOCOL_VERSION],
        },
        net.api_key,
    )
    assert status == 201, body
    body["instanceId"] = instance_id
    return body


def presence_state(instance_id: str) -> dict[str, Any]:
    # Unlimited concurrency: the benchmark never finishes its tasks.
    return {
        "instanceId": instance_id,
        "activeTasks": 0,
        "concurrency": 0,
        "protocolVersions": [PROTOCOL_VERSION],
    }


def raw_instance(
    net: Devnet, conn_info: dict[str, Any], arrivals: queue.Queue[tuple[float, str]]
) -> threading.Event:
    """A control-channel long-poll loop over raw HTTP; returns its stop event."""
    sub_key = net.cdm["playground"]["subscribeKey"]
    channel = quote(conn_info["controlChannel"], safe="")
    instance_id = conn_info["instanceId"]
    query = (
        f"uuid={quote(instance_id)}&auth={conn_info['pamToken']}"
        f"&filter-expr={quote(control_filter_expression(instance_id), safe='')}"
    )
    state = quote(json.dumps(presence_state(instance_id)), safe="")
    stop = threading.Event()
    ready = threading.Event()

    def loop() -> None:
        conn = http.client.HTTPConnection(net.host, net.port)
        conn.request("GET", f"/v2/subscribe/{sub_key}/{channel}/0?{query}&tt=0")
        cursor = json.loads(conn.getresponse().read())["t"]["t"]
        setter = http.client.HTTPConnection(net.host, net.port)
        setter.request(
            "GET",
            f"/v2/presence/sub-key/{sub_key}/channel/{channel}/uuid/{quote(instance_id)}/data?{query}&state={state}",
        )
        assert setter.getresponse().read()
        ready.set()
        while not stop.is_set():
            conn.request("GET", f"/v2/subscribe/{sub_key}/{channel}/0?{query}&tt={cursor}&tr=1")
            body = json.loads(conn.getresponse().read())
            cursor = body["t"]["t"]
            now = time.perf_counter()
            for envelope in body["m"]:
                arrivals.put((now, envelope["d"]["taskId"]))

    threading.Thread(target=loop, daemon=True, name="bench-raw-instance").start()
    ready.wait(10)
    return stop


class Arrivals(SubscribeCallback):  # type: ignore[misc]
    def __init__(self, arrivals: queue.Queue[tuple[float, str]]) -> None:
        self.arrivals = arrivals
        self.connected = threading.Event()

    def status(self, pubnub: PubNub, status: Any) -> None:
        if status.category == PNStatusCategory.PNConnectedCategory:
            self.connected.set()

    def message(self, pubnub: PubNub, message: Any) -> None:
        self.arrivals.put((time.perf_counter(), message.message["taskId"]))

    def presence(self, pubnub: PubNub, presence: Any) -> None:
        pass


def official_instance(
    net: Devnet, conn_info: dict[str, Any], arrivals: queue.Queue[tuple[float, str]]
) -> PubNub:
    config = PNConfiguration()
    config.origin = net.cdm.get("realtime", {}).get("origin", f"{net.host}:{net.port}")
    config.ssl = False
    config.publish_key = net.cdm["playground"]["publishKey"]
    config.subscribe_key = net.cdm["playground"]["subscribeKey"]
    config.user_id = conn_info["instanceId"]
    config.daemon = True
    config.filter_expression = control_filter_expression(conn_info["instanceId"])
    pubnub = PubNub(config)
    pubnub.set_token(conn_info["pamToken"])
    listener = Arrivals(arrivals)
    pubnub.add_listener(listener)
    pubnub.subscribe().channels([conn_info["controlChannel"]]).execute()
    listener.connected.wait(10)
    pubnub.set_state().channels([conn_info["controlChannel"]]).state(
        presence_state(conn_info["instanceId"])
    ).sync()
    return pubnub


def measure_hop(
    http: Http, token: str, arrivals: queue.Queue[tuple[float, str]], tasks: int
) -> dict[str, float]:
    samples = []
    for _ in range(tasks):
        sent = time.perf_counter()
        status, body = http.post(API_PATH_RPC, rpc_body("SendMessage", send_params()), token)
        assert status == 200 and "result" in body, body
        task_id = body["result"]["taskId"]
        while True:
            arrived, got = arrivals.get(timeout=10)
            if got == task_id:
                break
        samples.append((arrived - sent) * 1000)
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
    }


def measure_calls(http: Http, token: str, method: str, params: dict[str, Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        status, body = http.post(API_PATH_RPC, rpc_body(method, params), token)
        assert status == 200 and "result" in body, body
    return round(calls / (time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, devnet_process(data_dir) as net:
        http = Http(net)
        status, body = http.post(
            API_PATH_REGISTRY_AGENTS, {"card": CARD, "billingMode": "free"}, net.api_key
        )
        assert status in (200, 201), body
        _, exchanged = http.post(API_PATH_CONSUMER_TOKEN, {"apiKey": net.api_key})
        token = exchanged["accessToken"]
        results: dict[str, Any] = {}

        arrivals: queue.Queue[tuple[float, str]] = queue.Queue()
        stop = raw_instance(net, connect_instance(net, http), arrivals)
        time.sleep(0.2)  # the long-poll is parked
        measure_hop(http, token, arrivals, min(50, args.tasks))  # warm-up
        results["send_to_start_raw"] = measure_hop(http, token, arrivals, args.tasks)
        _, sent = http.post(API_PATH_RPC, rpc_body("SendMessage", send_params()), token)
        task_id = sent["result"]["taskId"]
        results["get_task_calls_per_s"] = measure_calls(
            http, token, "GetTask", {"taskId": task_id}, args.calls
        )
        results["send_message_calls_per_s"] = measure_calls(
            http, token, "SendMessage", send_params(), args.calls // 4
        )
        stop.set()

        # A fresh network-side instance through the official client (the raw one stays
        # present, so dispatch now chooses between two instances).
        official_arrivals: queue.Queue[tuple[float, str]] = queue.Queue()
        info = connect_instance(net, http)
        pubnub = official_instance(net, info, official_arrivals)
        try:
            results["send_to_start_official"] = _official_hop(
                http, token, official_arrivals, arrivals, args.tasks
            )
        finally:
            pubnub.stop()
        print(json.dumps(results, indent=2))


def _official_hop(
    http: Http,
    token: str,
    mine: queue.Queue[tuple[float, str]],
    other: queue.Queue[tuple[float, str]],
    tasks: int,
) -> dict[str, float]:
    """Hop latency counting only tasks the official-client instance received."""
    samples: list[float] = []
    while len(samples) < tasks:
        sent = time.perf_counter()
        status, body = http.post(API_PATH_RPC, rpc_body("SendMessage", send_params()), token)
        assert status == 200, body
        task_id = body["result"]["taskId"]
        try:
            arrived, got = mine.get(timeout=0.5)
        except queue.Empty:
            continue  # went to the (stopped) raw instance
        if got == task_id:
            samples.append((arrived - sent) * 1000)
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
    }


if __name__ == "__main__":
    main()
