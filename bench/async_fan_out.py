"""1,000 tasks fanned out from one consumer: AsyncTaskClient + asyncio.gather against
TaskClient + a thread pool (issue 16), with the peak thread count of the process.

One process holds the local network (in-process test network), an echo-like agent
(concurrency 32) and the consumer, so compare the two modes with each other only.

    python bench/async_fan_out.py --tasks 1000 --in-flight 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from blocks_network import AsyncTaskClient, TaskClient, text_part
from blocks_network.testing import AgentRunner, BlocksTestNetwork


def shout(task: Any, ctx: Any) -> dict[str, Any]:
    return {"artifacts": [{"data": task.request_parts[0]["text"].upper()}]}


class _PeakThreads:
    """Samples ``threading.active_count()`` every 10 ms until stopped."""

    def __init__(self) -> None:
        self.peak = threading.active_count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, threading.active_count())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def run_async(network: BlocksTestNetwork, tasks: int, in_flight: int) -> int:
    limit = asyncio.Semaphore(in_flight)
    async with await AsyncTaskClient.create(
        "free", api_key=network.api_key, environ=network.env
    ) as client:

        async def one(i: int) -> str | None:
            # The semaphore is entered first: at most in_flight sends and waits at once.
            async with limit, await client.send_message("shouter", [text_part(f"t{i}")]) as s:
                return (await s.wait_for_terminal(timeout=120)).state

        states = await asyncio.gather(*(one(i) for i in range(tasks)))
    return states.count("completed")


def run_sync(network: BlocksTestNetwork, tasks: int, in_flight: int) -> int:
    client = TaskClient.create("free", api_key=network.api_key, environ=network.env)

    def one(i: int) -> str | None:
        with client.send_message("shouter", [text_part(f"t{i}")]) as session:
            return session.wait_for_terminal(timeout=120).state

    try:
        with ThreadPoolExecutor(in_flight) as pool:
            states = list(pool.map(one, range(tasks)))
    finally:
        client.destroy()
    return states.count("completed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, BlocksTestNetwork.start(data) as network:
        runner = AgentRunner(network)
        runner.start(shout, agent_name="shouter", concurrency=args.in_flight)
        try:
            for mode in ("sync", "async", "sync", "async"):
                peak = _PeakThreads()
                started = time.perf_counter()
                if mode == "async":
                    done = asyncio.run(run_async(network, args.tasks, args.in_flight))
                else:
                    done = run_sync(network, args.tasks, args.in_flight)
                elapsed = time.perf_counter() - started
                result = {
                    "mode": mode,
                    "tasks": args.tasks,
                    "in_flight": args.in_flight,
                    "completed": done,
                    "seconds": round(elapsed, 2),
                    "tasks_per_s": round(args.tasks / elapsed, 1),
                    "peak_threads": peak.stop(),
                }
                print(json.dumps(result), flush=True)
        finally:
            runner.stop_all()


if __name__ == "__main__":
    main()
