"""A request/response consumer: send tasks to echo and adder, follow them, read artifacts.

    python examples/request-consumer/consumer.py "hello" 2 40

Shows ``TaskClient.create`` from BLOCKS_CDM_URL/BLOCKS_API_KEY, progress callbacks,
``wait_for_terminal``, artifact downloads, and the errors a consumer should expect.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from blocks_network import BillingModeMismatchError, RpcError, TaskClient, TaskEvent, text_part

TIMEOUT_S = 30.0


def ask(client: TaskClient, agent: str, text: str) -> dict[str, Any]:
    """Send one task and wait for it; returns its state, progress lines and artifacts."""
    progress: list[str] = []

    def on_progress(event: TaskEvent) -> None:
        progress.append(event.message or event.state or "progress")

    with client.send_message(agent, [text_part(text)]) as session:
        session.on_progress(on_progress)  # replays what already happened, then live events
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        artifacts = [session.download_artifact(ref) for ref in session.list_artifacts()]
        return {
            "taskId": session.task_id,
            "state": terminal.state,
            "error": terminal.error,
            "progress": progress,
            "artifacts": [(a.mime_type, a.data.decode()) for a in artifacts],
        }


def run(client: TaskClient, text: str, a: float, b: float) -> dict[str, Any]:
    """Ask echo and adder, and show two refusals: an unknown agent and a wrong billing mode."""
    results: dict[str, Any] = {
        "echo": ask(client, "echo", text),
        "adder": ask(client, "adder", json.dumps({"a": a, "b": b})),
    }
    try:
        client.send_message("no_such_agent", [text_part(text)])
    except RpcError as exc:
        results["unknown agent"] = exc.code
    return results


def billing_mismatch(paid_client: TaskClient) -> str | None:
    """A ``paid`` client cannot call a free agent: the backend says which mode it expects."""
    try:
        paid_client.send_message("echo", [text_part("hi")])
    except BillingModeMismatchError as exc:
        return exc.expected
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = args[0] if args else "hello"
    a, b = (float(args[1]), float(args[2])) if len(args) > 2 else (2.0, 40.0)
    with TaskClient.create(billing_mode="free") as client:  # BLOCKS_CDM_URL + BLOCKS_API_KEY
        results = run(client, text, a, b)
    for name, result in results.items():
        if isinstance(result, dict):
            print(f"{name}: {result['state']} {result['artifacts']}")
        else:
            print(f"{name}: refused with {result}")
    with TaskClient.create(billing_mode="paid") as paid:
        print(
            f"paid client -> echo: refused, the agent's billing mode is {billing_mismatch(paid)!r}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
