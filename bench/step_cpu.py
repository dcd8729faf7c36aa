"""CPU per task of named functions in each process of the echo round trip.

Usage: python bench/step_cpu.py [--tasks 500] [--threads 1]
           [--network MODULE:QUALNAME ...] [--agent MODULE:QUALNAME ...]
           [--consumer MODULE:QUALNAME ...]

Why this and not a profiler: on the 2-core benchmark VM, cProfile and py-spy inflate small
calls two to three times and py-spy counts a thread descheduled inside ``send()`` as busy.
Here each named function is wrapped with the thread CPU clock (``time.thread_time``), so a
figure is the CPU that function's thread spent in it (nested functions count in both; each
wrapper adds a microsecond or two). A function is looked up where it is *called*: for one
another module imported by name, name that module (``blocks_devnet.realtime.subscribe:
build_request``, not ``blocks_devnet.realtime.http:build_request``). Route handlers are
bound when the app is built, so name what they call rather than the handler.

Three processes, as in ``consumer_roundtrip.py``: a local network, one echo agent
(concurrency 32) and this process as the consumer; 100 warm-up tasks are not counted.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULTS = {
    "network": [
        "blocks_devnet.fast_path:_parse_head",
        "blocks_devnet.fast_path:FastProtocol._serve",
        "blocks_devnet.fast_path:FastProtocol._answer_waited",
        "blocks_devnet.realtime.publish:append_publish",
        "blocks_devnet.backend.tasks.service:TaskService.send_message",
        "blocks_devnet.realtime.subscribe:build_request",
    ],
    "agent": [
        "blocks_network.agent.task_runner:TaskRunner.publish_event",
        "blocks_network.agent.realtime_http:RealtimeHttp.start_publish",
        "blocks_network.agent.control:ControlHandler.handle",
    ],
    "consumer": [
        "blocks_network.consumer.task_client:TaskClient.send_message",
        "blocks_network.transport.subscription:ChannelSubscription._poll",
        "blocks_network.transport.subscription:ChannelSubscription._deliver",
    ],
}
WARM_UP_TASKS = 100

Totals = dict[str, list[float]]


def instrument(specs: list[str]) -> Totals:
    """Wrap each ``module:qualname``; returns {spec: [cpu seconds, calls]} (thread-safe
    enough for figures: a lost update under contention is one call in thousands)."""
    totals: Totals = collections.defaultdict(lambda: [0.0, 0])
    for spec in specs:
        module_name, _, qualname = spec.partition(":")
        owner: Any = importlib.import_module(module_name)
        *path, name = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _timed(getattr(owner, name), totals[spec]))
    return totals


def _timed(function: Any, total: list[float]) -> Any:
    clock = time.thread_time
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return await function(*args, **kwargs)
            finally:
                total[0] += clock() - started
                total[1] += 1

        return timed_coroutine

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            total[0] += clock() - started
            total[1] += 1

    return timed


def _child(role: str, output: str, specs: list[str]) -> int:
    """Network or agent: instrument, serve, zero the figures on "reset", write them out
    when stdin closes."""
    totals = instrument(specs)
    if role == "network":
        from blocks_devnet.backend.config import DevnetConfig
        from blocks_devnet.network import LocalNetwork

        network = LocalNetwork(DevnetConfig(port=0, data_dir=Path(tempfile.mkdtemp()))).start()
        print(json.dumps(network.env()), flush=True)
        stop: Callable[[], object] = network.stop
    else:
        from blocks_network.agent.instance import start_agent_instance
        from blocks_network.handlers.echo import echo_handler
        from blocks_network.types import AgentInstanceOptions

        handle = start_agent_instance(
            AgentInstanceOptions(agent_name="echo", handler=echo_handler, concurrency=32)
        )
        print(json.dumps({"ready": True}), flush=True)
        stop = handle["stop"]
    for line in sys.stdin:
        if line.strip() == "reset":
            for total in totals.values():
                total[0], total[1] = 0.0, 0
    Path(output).write_text(json.dumps(dict(totals)))
    stop()
    return 0


def _start_child(role: str, output: Path, specs: list[str], env: dict[str, str]) -> Any:
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", role, str(output), *specs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "LOG_LEVEL": "error"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError(f"the {role} process did not start (is every name right?)")
    return process, json.loads(line)


def _report(role: str, totals: dict[str, list[float]], tasks: int) -> None:
    print(f"{role}:")
    for spec, (seconds, calls) in sorted(totals.items(), key=lambda item: -item[1][0]):
        per_call = seconds / calls * 1e6 if calls else 0.0
        print(
            f"  {seconds / tasks * 1e6:8.1f} µs/task  {calls / tasks:5.2f} calls/task  "
            f"{per_call:7.1f} µs/call  {spec}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    for role in DEFAULTS:
        parser.add_argument(f"--{role}", nargs="*", default=None, metavar="MODULE:QUALNAME")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, output, *specs = args.child
        return _child(role, output, specs)

    specs = {role: getattr(args, role) or DEFAULTS[role] for role in DEFAULTS}
    consumer_totals = instrument(specs["consumer"])
    from blocks_network import TaskClient, text_part

    with tempfile.TemporaryDirectory() as tmp:
        outputs = {role: Path(tmp) / f"{role}.json" for role in ("network", "agent")}
        network, env = _start_child("network", outputs["network"], specs["network"], {})
        agent, _ = _start_child("agent", outputs["agent"], specs["agent"], env)
        children = (network, agent)
        try:
            os.environ.update(env)
            client = TaskClient.create("free")

            def run(count: int) -> None:
                for _ in range(count):
                    with client.send_message("echo", [text_part("hi")]) as session:
                        session.wait_for_terminal(timeout=30)
                        session.download_artifact(session.list_artifacts()[0])

            run(WARM_UP_TASKS)
            for child in children:
                child.stdin.write("reset\n")
                child.stdin.flush()
            for total in consumer_totals.values():
                total[0], total[1] = 0.0, 0
            per_thread = max(1, args.tasks // args.threads)
            started = time.perf_counter()
            workers = [
                threading.Thread(target=run, args=(per_thread,)) for _ in range(args.threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            tasks = per_thread * args.threads
            print(
                f"{tasks} tasks, {args.threads} thread(s): "
                f"{tasks / (time.perf_counter() - started):.0f} tasks/s"
            )
            client.destroy()
        finally:
            for child in children:
                child.stdin.close()
                child.wait(30)
        for role, output in outputs.items():
            _report(role, json.loads(output.read_text()), tasks)
    _report("consumer", dict(consumer_totals), tasks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
