"""The advanced_stream agent: a pipe task with three named streams.

- ``tokens``: an ``events`` stream whose events must match the JSON schema in the card;
  the agent checks each one before writing it (consumers can check with the same schema).
- ``audio``: a raw ``bytes`` stream (a generated 8-bit tone).
- ``broadcast``: a ``shared`` events stream: one stream for every task this instance runs;
  each task announces itself on it, and every consumer of every task reads it.

A pipe task lives until its consumer cancels it or its duration runs out. This handler
writes its streams, then waits for that moment and returns a summary artifact.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

CARD = json.loads((Path(__file__).parent / "agent-card.json").read_text())
TOKENS_SCHEMA: Mapping[str, Any] = CARD["streams"]["tokens"]["schema"]
TONE_BYTES = 8000  # one second of 8 kHz, 8-bit audio
_PYTHON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool}

_lock = threading.Lock()
_tasks_seen = 0


def check_event(schema: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``event`` has the schema's required keys and property types.

    A deliberately small subset of JSON Schema (``required`` and flat ``properties`` types).
    """
    missing = [key for key in schema.get("required", []) if key not in event]
    if missing:
        raise ValueError(f"event {event!r} misses {missing}")
    for key, rule in schema.get("properties", {}).items():
        expected = _PYTHON_TYPES.get(rule.get("type"))
        if key not in event or expected is None:
            continue
        value = event[key]
        # bool is an int in Python, never a JSON integer.
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise ValueError(f"event field {key!r} must be a {rule['type']}, got {value!r}")


def tone(size: int = TONE_BYTES) -> bytes:
    """A 440 Hz sine wave, 8 kHz, unsigned 8-bit samples."""
    return bytes(int(128 + 100 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(size))


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Write the three streams, then wait until the task is canceled or expires."""
    global _tasks_seen
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    tokens = ctx.create_stream(declared_stream="tokens", metadata={"count": len(text.split())})
    audio = ctx.create_stream(declared_stream="audio", metadata={"sampleRate": 8000})
    broadcast = ctx.create_stream(declared_stream="broadcast")
    with _lock:
        _tasks_seen += 1
        seen = _tasks_seen
    broadcast.write({"event": "joined", "taskId": task.task_id, "tasksSeen": seen})
    broadcast.flush()

    for index, word in enumerate(text.split()):
        event = {"index": index, "token": word}
        check_event(TOKENS_SCHEMA, event)
        tokens.write(event)
    tokens.end()  # the consumer's loop over tokens.events() ends here
    sound = tone()
    audio.write(sound)
    audio.end()
    ctx.report_status("streams written; running until canceled")

    ctx.cancel_event.wait()  # set on CancelTask, TerminateTask or when the duration runs out
    summary = {"tokens": len(text.split()), "audioBytes": len(sound), "expired": ctx.is_expired}
    return {"artifacts": [{"data": json.dumps(summary), "mimeType": "application/json"}]}
