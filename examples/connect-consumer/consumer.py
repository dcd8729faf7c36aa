"""Reattach to tasks with ``client.connect(task_id)``: an active one and a finished one.

    python examples/connect-consumer/consumer.py

Needs the stock_sim agent (examples/stock-sim) and echo. A consumer that restarts, or a
different process, can pick up a task from its id alone.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from blocks_network import StreamUnavailableError, TaskClient, text_part

TIMEOUT_S = 30.0


def reattach_active(client: TaskClient, *, interval_s: float = 0.2) -> dict[str, Any]:
    """Start a feed, drop its session, connect again, read live, then cancel it."""
    request = json.dumps({"symbols": ["ACME"], "intervalSeconds": interval_s})
    first = client.send_message(
        "stock_sim", [text_part(request)], task_kind="pipe", duration=1, stream=True
    )
    task_id = first.task_id
    first.wait_for_stream("prices", timeout=TIMEOUT_S)
    first.close()  # the consumer goes away; the task keeps running

    with client.connect(task_id) as session:  # history first, then live
        active = not session.is_terminal
        past = [event.type for event in session.events]
        ticks = session.wait_for_stream("prices", timeout=TIMEOUT_S).open()
        tick = next(ticks.events(timeout=TIMEOUT_S))  # live data on a reattached session
        session.cancel()
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
    return {
        "taskId": task_id,
        "active": active,
        "history": past,
        "tick": tick,
        "state": terminal.state,
    }


def reattach_finished(client: TaskClient, task_id: str) -> dict[str, Any]:
    """A finished task: state and artifacts from history; its streams are gone."""
    with client.connect(task_id) as session:
        unavailable = []
        for ref in session.list_streams():
            try:
                ref.open()
            except StreamUnavailableError as err:  # stream data is live-only
                unavailable.append(err.declared_stream or err.stream_id)
        artifacts = [
            session.download_artifact(ref).data.decode() for ref in session.list_artifacts()
        ]
        return {
            "state": session.state,
            "terminal": session.is_terminal,
            "artifacts": artifacts,
            "unavailableStreams": unavailable,
        }


def finished_echo(client: TaskClient) -> str:
    """The id of an echo task that already completed."""
    with client.send_message("echo", [text_part("remember me")]) as session:
        session.wait_for_terminal(timeout=TIMEOUT_S)
        return session.task_id


def main(argv: list[str] | None = None) -> int:
    with TaskClient.create(billing_mode="free") as client:
        active = reattach_active(client)
        print(
            f"active task {active['taskId']}: reattached, live tick {active['tick']}, then {active['state']}"
        )
        print(f"  the same task, finished: {reattach_finished(client, active['taskId'])}")
        print(f"a finished echo task: {reattach_finished(client, finished_echo(client))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
