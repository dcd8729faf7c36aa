"""The orchestrator agent: fans a request out to ``echo`` and ``adder`` and summarises.

``adder`` is the local network's built-in (``blocks-run --handler adder``).

``ctx.task_client`` is a consumer ``TaskClient`` owned by the agent instance (its API key,
its billing mode): a handler calls other agents exactly as any consumer does. Both tasks
are sent first and awaited after, so they run at the same time.
"""

from __future__ import annotations

import json
from typing import Any

from blocks_network import text_part
from blocks_network.types import StartTaskMessage, TaskContext

SUBTASK_TIMEOUT_S = 30.0


def _request(task: StartTaskMessage) -> dict[str, Any]:
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    try:
        request = json.loads(text)
    except ValueError:
        request = None
    if not isinstance(request, dict):
        request = {"text": text}
    return {
        "text": str(request.get("text", "")),
        "a": request.get("a", 1),
        "b": request.get("b", 2),
    }


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Send ``text`` to echo and ``{a, b}`` to adder, wait for both, return one summary."""
    request = _request(task)
    client = ctx.task_client
    ctx.report_status("asking echo and adder")
    echo = client.send_message("echo", [text_part(request["text"])])
    adder = client.send_message(
        "adder", [text_part(json.dumps({"a": request["a"], "b": request["b"]}))]
    )
    results: dict[str, Any] = {}
    with echo, adder:
        for name, session in (("echo", echo), ("adder", adder)):
            terminal = session.wait_for_terminal(timeout=SUBTASK_TIMEOUT_S)
            if terminal.state != "completed":
                raise RuntimeError(
                    f"{name} task {session.task_id} ended {terminal.state}: {terminal.error}"
                )
            data = session.download_artifact(session.list_artifacts()[0]).data.decode()
            results[name] = {"taskId": session.task_id, "answer": data}
    added = json.loads(results["adder"]["answer"])
    if not added.get("ok"):
        # The built-in adder completes with {"ok": false, "error": ...} for bad input.
        raise RuntimeError(
            f"adder task {results['adder']['taskId']} answered: {added.get('error')}"
        )
    total = added.get("sum")
    summary = {
        "echo": results["echo"]["answer"],
        "sum": total,
        "subtasks": {name: r["taskId"] for name, r in results.items()},
        "summary": f"echo said {results['echo']['answer']!r}; {request['a']} + {request['b']} = {total}",
    }
    return {"artifacts": [{"data": json.dumps(summary, indent=2), "mimeType": "application/json"}]}
