"""Consumer of examples/lifecycle: cancel, terminate, pause/resume, retry, idempotency.

python examples/lifecycle/consumer.py
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from typing import Any

from blocks_network import TaskClient, TaskEvent, text_part

AGENT = "lifecycle"
TIMEOUT_S = 30.0


def _send(client: TaskClient, request: dict[str, Any], **options: Any) -> Any:
    return client.send_message(AGENT, [text_part(json.dumps(request))], **options)


def _result(session: Any) -> Any:
    refs = session.list_artifacts()
    return json.loads(session.download_artifact(refs[0]).data) if refs else None


def stop_while_working(
    client: TaskClient, *, terminate: bool, step_s: float = 0.2
) -> dict[str, Any]:
    """Start a long task, wait for its first step, then cancel (or terminate) it."""
    started = threading.Event()

    def on_progress(event: TaskEvent) -> None:
        if event.message and event.message.startswith("step"):
            started.set()

    with _send(client, {"action": "work", "steps": 1000, "stepSeconds": step_s}) as session:
        session.on_progress(on_progress)
        if not started.wait(TIMEOUT_S):
            raise TimeoutError("the task reported no step")
        session.terminate() if terminate else session.cancel()
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        return {"state": terminal.state, "reason": terminal.reason, "result": _result(session)}


def pause_and_resume(client: TaskClient, *, step_s: float = 0.05) -> dict[str, Any]:
    """Drive a pipe task over its control stream: pause, resume, stop; then hang up."""
    with _send(
        client, {"action": "controlled", "stepSeconds": step_s}, task_kind="pipe", duration=1
    ) as session:
        control = session.wait_for_stream("control", timeout=TIMEOUT_S).open()
        acks = control.events(timeout=TIMEOUT_S)
        replies = []
        for command in ("pause", "resume", "stop"):
            control.write({"command": command})
            control.flush()
            replies.append(next(acks))
        session.cancel()  # after "stop" the agent waits for this: it ends the pipe task
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        return {"acks": replies, "state": terminal.state, "result": _result(session)}


def retry(client: TaskClient) -> dict[str, Any]:
    """A failed task is retried by sending it again with a new idempotency key."""
    request = {"action": "flaky", "job": uuid.uuid4().hex[:8]}
    attempts = []
    for _ in range(2):
        with _send(client, request, idempotency_key=uuid.uuid4().hex) as session:
            terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
            attempts.append(
                {"taskId": session.task_id, "state": terminal.state, "error": terminal.error}
            )
            if terminal.state == "completed":
                break
    return {"attempts": attempts}


def same_key(client: TaskClient) -> dict[str, Any]:
    """Sending again with the same idempotency key returns the same task, already over."""
    key = uuid.uuid4().hex
    with _send(
        client, {"action": "work", "steps": 1, "stepSeconds": 0}, idempotency_key=key
    ) as first:
        first.wait_for_terminal(timeout=TIMEOUT_S)
    with _send(
        client, {"action": "work", "steps": 1, "stepSeconds": 0}, idempotency_key=key
    ) as again:
        return {
            "first": first.task_id,
            "again": again.task_id,
            "idempotent": again.task_id == first.task_id,
            "alreadyOver": again.is_terminal,
            "state": again.state,
        }


def main(argv: list[str] | None = None) -> int:
    with TaskClient.create(billing_mode="free") as client:
        print("cancel:         ", stop_while_working(client, terminate=False))
        print("terminate:      ", stop_while_working(client, terminate=True))
        print("pause/resume:   ", pause_and_resume(client))
        print("retry:          ", retry(client))
        print("same key:       ", same_key(client))
    return 0


if __name__ == "__main__":
    sys.exit(main())
