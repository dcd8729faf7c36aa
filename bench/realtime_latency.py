"""Realtime server benchmarks (issue 2): publish→listener latency, fan-out, idle long-polls.

Usage: python bench/realtime_latency.py [--messages 1000] [--subscribers 100] [--polls 2000]
The server runs in its own process; clients run here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from pubnub.callbacks import SubscribeCallback
from pubnub.enums import PNStatusCategory
from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import ServerProcess, percentile, realtime_server_process


def client(server: ServerProcess, user_id: str) -> PubNub:
    config = PNConfiguration()
    config.origin = server.origin
    config.ssl = False
    config.publish_key = server.publish_key
    config.subscribe_key = server.subscribe_key
    config.user_id = user_id
    config.daemon = True
    return PubNub(config)


class Arrivals(SubscribeCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.arrived: queue.Queue[float] = queue.Queue()
        self.connected: queue.Queue[bool] = queue.Queue()

    def status(self, pubnub: PubNub, status: Any) -> None:
        if status.category == PNStatusCategory.PNConnectedCategory:
            self.connected.put(True)

    def message(self, pubnub: PubNub, message: Any) -> None:
        self.arrived.put(time.perf_counter())

    def presence(self, pubnub: PubNub, presence: Any) -> None:
        pass


def publish_latency(server: ServerProcess, count: int) -> dict[str, float]:
    subscriber, publisher = client(server, "sub"), client(server, "pub")
    listener = Arrivals()
    subscriber.add_listener(listener)
    subscriber.subscribe().channels(["latency"]).execute()
    listener.connected.get(timeout=10)
    for _ in range(20):  # warm the connection pools
        publisher.publish().channel("latency").message("w").sync()
        listener.arrived.get(timeout=10)
    samples = []
    for i in range(count):
        sent = time.perf_counter()
        publisher.publish().channel("latency").message(i).sync()
        samples.append((listener.arrived.get(timeout=10) - sent) * 1000)
    subscriber.stop()
    publisher.stop()
    return {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)}


async def _subscribe_loop(
    session: aiohttp.ClientSession,
    url: str,
    start_tt: str,
    want: int,
    counts: list[int],
    index: int,
) -> None:
    tt = start_tt
    while counts[index] < want:
        async with session.get(f"{url}&tt={tt}&tr=1&uuid=s{index}") as response:
            body = json.loads(await response.read())
        counts[index] += len(body["m"])
        tt = body["t"]["t"]


async def fan_out(
    server: ServerProcess, subscribers: int, messages: int, publishers: int
) -> dict[str, float]:
    base = f"http://{server.origin}"
    sub_url = f"{base}/v2/subscribe/{server.subscribe_key}/fan/0?pnsdk=bench"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{base}/time/0") as response:
            start_tt = str((await response.json())[0])
        counts = [0] * subscribers
        loops = [
            asyncio.create_task(_subscribe_loop(session, sub_url, start_tt, messages, counts, i))
            for i in range(subscribers)
        ]
        await asyncio.sleep(0.5)  # let every subscriber park its long-poll
        pub_url = (
            f"{base}/publish/{server.publish_key}/{server.subscribe_key}/0/fan/0?uuid=pub&store=0"
        )
        started = time.perf_counter()

        async def publisher(first: int) -> None:
            for i in range(first, messages, publishers):
                async with session.post(
                    pub_url, data=json.dumps({"i": i, "pad": "x" * 64})
                ) as response:
                    await response.read()

        await asyncio.gather(*(publisher(p) for p in range(publishers)))
        await asyncio.wait_for(asyncio.gather(*loops), timeout=120)
        elapsed = time.perf_counter() - started
    delivered = sum(counts)
    return {
        "subscribers": subscribers,
        "publishers": publishers,
        "messages": messages,
        "delivered": delivered,
        "delivered_per_s": delivered / elapsed,
    }


async def idle_polls(server: ServerProcess, polls: int) -> dict[str, float]:
    base = f"http://{server.origin}"
    rss_before = server.rss_mb()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.get(f"{base}/time/0") as response:
            tt = str((await response.json())[0])

        async def poll(i: int) -> None:
            url = f"{base}/v2/subscribe/{server.subscribe_key}/idle.{i % 50}/0?tt={tt}&tr=1&uuid=idle{i}"
            async with session.get(url) as response:
                await response.read()

        tasks = [asyncio.create_task(poll(i)) for i in range(polls)]
        await asyncio.sleep(8)  # all connected and parked
        rss_held = server.rss_mb()
        held = sum(1 for t in tasks if not t.done())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"polls": polls, "held": held, "rss_before_mb": rss_before, "rss_held_mb": rss_held}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--fan-messages", type=int, default=300)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--polls", type=int, default=2000)
    args = parser.parse_args()
    with realtime_server_process() as server:
        print("publish->listener latency:", publish_latency(server, args.messages))
    with realtime_server_process() as server:
        print(
            "fan-out:",
            asyncio.run(fan_out(server, args.subscribers, args.fan_messages, args.publishers)),
        )
    with realtime_server_process("--long-poll-seconds", "60") as server:
        print("idle long-polls:", asyncio.run(idle_polls(server, args.polls)))


if __name__ == "__main__":
    main()
