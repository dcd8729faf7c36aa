"""``make demo`` (``python -m blocks_devnet.demo``): the whole system in one process, in seconds.

Starts a local Blocks Network on a free port with a temporary data directory, starts the
built-in ``echo`` and ``adder`` agents (the handlers ``blocks-run --handler echo|adder``
runs), sends one task to each with the consumer API, prints the results and the commands
for doing the same by hand, then stops everything. Exit code 0 when both tasks completed
with the expected answers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
from blocks_network import AgentInstanceHandle, TaskClient, start_agent_instance, text_part
from blocks_network.handlers.loader import load_registry_handler
from blocks_network.types import AgentInstanceOptions

__all__ = ["main"]

#: Each demo task must end within this many seconds.
TASK_TIMEOUT_S = 15.0

NEXT_STEPS = """\
Where to look next
  By hand, in three terminals from the repository root (README.md, "Quickstart by hand"):
    1  blocks devnet --env-file .blocks/devnet.env
    2  set -a; . .blocks/devnet.env; set +a
       blocks-run --handler echo
    3  set -a; . .blocks/devnet.env; set +a
       blocks send echo "hello"
  Then: blocks tasks list, blocks watch TASK_ID, blocks agents list
  Examples to run and copy: examples/README.md
  Docs: docs/getting-started.md, docs/writing-handlers.md, docs/testing-kit.md\
"""


def _say(text: str = "") -> None:
    print(text, flush=True)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` (agents read BLOCKS_* like any agent) and restore."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _start_agent(name: str) -> AgentInstanceHandle:
    entry = load_registry_handler(name)
    return start_agent_instance(
        AgentInstanceOptions(
            agent_name=entry.agent_name, description=entry.description, handler=entry.handler
        )
    )


def _run_task(client: TaskClient, agent: str, text: str, expected: str) -> bool:
    """Send ``text`` to ``agent``, print what came back; True if it contains ``expected``."""
    _say(f"-> {agent}: {text}")
    started = time.monotonic()
    with client.send_message(agent, [text_part(text)]) as session:
        terminal = session.wait_for_terminal(timeout=TASK_TIMEOUT_S)
        elapsed_ms = (time.monotonic() - started) * 1000
        _say(f"   task {session.task_id}: {terminal.state} in {elapsed_ms:.0f} ms")
        answers = []
        for ref in session.list_artifacts():
            data = session.download_artifact(ref).data.decode("utf-8")
            if ref.mime_type == "application/json":
                data = json.dumps(json.loads(data))
            answers.append(data)
            _say(f"   artifact ({ref.mime_type}): {data}")
    _say()
    return terminal.state == "completed" and any(expected in a for a in answers)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code (0 when both tasks completed as expected)."""
    # A root handler keeps the agents' structured log lines out of the demo's output.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s"
    )
    started = time.monotonic()
    _say("Blocks Network demo: a local network, two agents, two tasks")
    with tempfile.TemporaryDirectory(prefix="blocks-demo-") as data_dir:
        config = DevnetConfig(port=0, data_dir=Path(data_dir), long_poll_seconds=5)
        with LocalNetwork(config) as network, _environment(network.env()):
            _say(f"   local network  {network.url}   (data: {data_dir})")
            handles = [_start_agent("echo"), _start_agent("adder")]
            try:
                names = ", ".join(f"{h.agent_name} ({h.instance_id[:16]}...)" for h in handles)
                _say(f"   agents         {names}")
                _say()
                with TaskClient.create(billing_mode="free") as client:
                    ok = _run_task(client, "echo", "Hello from the demo", "Hello from the demo")
                    ok = _run_task(client, "adder", '{"a": 2, "b": 40}', '"sum": 42') and ok
            finally:
                for handle in handles:
                    handle.stop(grace_s=1)
    _say(f"Stopped the agents and the network ({time.monotonic() - started:.1f} s in all).")
    _say()
    _say(NEXT_STEPS)
    if not ok:
        _say("demo: a task did not give the expected answer (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
