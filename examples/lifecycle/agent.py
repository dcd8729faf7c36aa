"""The lifecycle agent: tasks that can be canceled, terminated, paused, resumed and retried.

Send JSON text with an ``action``:

- ``{"action": "work", "steps": 20, "stepSeconds": 0.5}``: a request task that reports each
  step and stops early when canceled or terminated (it checks ``ctx.cancel_event``).
- ``{"action": "flaky", "job": "J"}``: fails the first attempt of job ``J`` in this
  instance and succeeds after, like a transient error worth retrying.
- ``{"action": "controlled", "stepSeconds": 0.5}``: a pipe task driven over its
  bidirectional ``control`` stream: ``{"command": "pause" | "resume" | "stop"}`` in, one
  ``{"state": ..., "step": n}`` acknowledgement out per command. After "stop" it waits for
  the consumer to cancel the task, then returns its result.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

_attempts: Counter[str] = Counter()
_attempts_lock = threading.Lock()


def _request(task: StartTaskMessage) -> dict[str, Any]:
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    try:
        request = json.loads(text)
    except ValueError:
        raise ValueError(f'send JSON such as {{"action": "work"}}, got {text!r}') from None
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object with an action")
    return request


def _result(data: dict[str, Any]) -> dict[str, Any]:
    return {"artifacts": [{"data": json.dumps(data), "mimeType": "application/json"}]}


def work(ctx: TaskContext, steps: int, step_s: float) -> dict[str, Any]:
    done = 0
    while done < steps and not ctx.cancel_event.wait(step_s):
        done += 1
        ctx.report_status(f"step {done}/{steps}")
    # Returned after a cancel too: the runtime publishes it, then the terminal `canceled`.
    return _result(
        {"done": done, "of": steps, "canceled": ctx.is_cancelled, "terminated": ctx.is_terminated}
    )


def flaky(job: str) -> dict[str, Any]:
    with _attempts_lock:
        _attempts[job] += 1
        attempt = _attempts[job]
    if attempt == 1:
        raise RuntimeError(f"transient failure of job {job} (attempt 1): send it again")
    return _result({"job": job, "attempt": attempt})


def controlled(ctx: TaskContext, step_s: float) -> dict[str, Any]:
    control = ctx.create_stream(declared_stream="control")
    running = threading.Event()
    running.set()
    stopped = threading.Event()
    state = {"step": 0, "pauses": 0}

    def listen() -> None:
        for message in control.events():
            command = message.get("command") if isinstance(message, dict) else None
            if command == "pause":
                running.clear()
                state["pauses"] += 1
            elif command == "resume":
                running.set()
            elif command == "stop":
                stopped.set()
                running.set()
            answer = {"pause": "paused", "resume": "running", "stop": "stopped"}.get(str(command))
            control.write(
                {"state": answer or f"unknown command {command!r}", "step": state["step"]}
            )
            control.flush()
            if stopped.is_set():
                return

    listener = threading.Thread(target=listen, name="lifecycle-control", daemon=True)
    listener.start()
    while not stopped.is_set() and not ctx.cancel_event.wait(step_s):
        if running.is_set():  # paused: no steps until "resume"
            state["step"] += 1
    # Stopped: the work is over; the pipe task ends when the consumer cancels it.
    ctx.cancel_event.wait()
    control.close()
    listener.join(5)
    return _result({"steps": state["step"], "pauses": state["pauses"]})


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Dispatch on the request's ``action``."""
    request = _request(task)
    action = request.get("action")
    step_s = float(request.get("stepSeconds", 0.5))
    if action == "work":
        return work(ctx, int(request.get("steps", 20)), step_s)
    if action == "flaky":
        return flaky(str(request.get("job", "job")))
    if action == "controlled":
        return controlled(ctx, step_s)
    raise ValueError(f"unknown action {action!r}: use work, flaky or controlled")
