"""The server's own share of a publish→subscriber hop, measured with raw HTTP (no pubnub client).

Usage: python bench/realtime_raw_hop.py [--messages 300]
A raw long-poll loop (http.client) on one thread, raw GET publishes on another.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import percentile, realtime_server_process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    with realtime_server_process() as server:
        host, port = server.origin.split(":")
        arrivals: queue.Queue[float] = queue.Queue()
        stop = threading.Event()
        path = f"/v2/subscribe/{server.subscribe_key}/hop/0?uuid=s"

        def subscribe_loop() -> None:
            conn = http.client.HTTPConnection(host, int(port))
            conn.request("GET", path + "&tt=0")
            cursor = json.loads(conn.getresponse().read())["t"]["t"]
            arrivals.put(0.0)
            while not stop.is_set():
                conn.request("GET", f"{path}&tt={cursor}&tr=1")
                body = json.loads(conn.getresponse().read())
                cursor = body["t"]["t"]
                if body["m"]:
                    arrivals.put(time.perf_counter())

        threading.Thread(target=subscribe_loop, daemon=True).start()
        arrivals.get(timeout=10)
        time.sleep(0.2)  # the long-poll is parked
        publisher = http.client.HTTPConnection(host, int(port))
        samples = []
        for i in range(args.messages):
            sent = time.perf_counter()
            publisher.request(
                "GET",
                f"/publish/{server.publish_key}/{server.subscribe_key}/0/hop/0/{i}?uuid=p&store=0",
            )
            publisher.getresponse().read()
            samples.append((arrivals.get(timeout=10) - sent) * 1000)
        stop.set()
        print(
            {"raw_hop_p50_ms": percentile(samples, 50), "raw_hop_p99_ms": percentile(samples, 99)}
        )


if __name__ == "__main__":
    main()
