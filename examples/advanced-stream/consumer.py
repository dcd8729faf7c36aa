"""Consumer of examples/advanced-stream: opens all three streams of a pipe task.

    python examples/advanced-stream/consumer.py "to be or not to be"

Reads the ``tokens`` events (checking each against the schema the agent's card
publishes), the ``audio`` bytes and this task's announcement on the shared ``broadcast``
stream, then cancels the pipe task (its normal end) and prints the summary artifact.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from typing import Any

from blocks_network import TaskClient, text_part

AGENT = "advanced_stream"
TIMEOUT_S = 30.0


def check_event(schema: Mapping[str, Any], event: Any) -> None:
    """The consumer's side of the schema contract: required keys must be present."""
    if not isinstance(event, dict) or any(key not in event for key in schema.get("required", [])):
        raise ValueError(f"event {event!r} does not match the stream's schema")


def run(
    client: TaskClient, text: str, *, duration_minutes: int = 1, agent: str = AGENT
) -> dict[str, Any]:
    """Start the pipe task, read its three streams, cancel it; returns what was read."""
    card = client.get_agent_card(agent) or {}
    schema = card.get("streams", {}).get("tokens", {}).get("schema", {})
    session = client.send_message(
        agent, [text_part(text)], task_kind="pipe", duration=duration_minutes, stream=True
    )
    with session:
        refs = {
            name: session.wait_for_stream(name, timeout=TIMEOUT_S)
            for name in ("tokens", "audio", "broadcast")
        }
        tokens, audio, broadcast = (refs[name].open() for name in ("tokens", "audio", "broadcast"))
        words = []
        for event in tokens.events(timeout=TIMEOUT_S):
            check_event(schema, event)
            words.append(event["token"])
        sound = audio.read_all(timeout=TIMEOUT_S)
        # A shared stream outlives tasks: a new reader may first get earlier announcements.
        announcement = next(
            event
            for event in broadcast.events(timeout=TIMEOUT_S)
            if event.get("taskId") == session.task_id
        )
        session.cancel()  # a pipe task runs until canceled (or until its duration ends)
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        summary = [
            json.loads(session.download_artifact(ref).data) for ref in session.list_artifacts()
        ]
        return {
            "taskId": session.task_id,
            "state": terminal.state,
            "words": words,
            "audioBytes": len(sound),
            "audioSha256": hashlib.sha256(sound).hexdigest(),
            "broadcast": announcement,
            "streams": {
                name: (ref.stream_id, ref.descriptor.affinity) for name, ref in refs.items()
            },
            "summary": summary,
        }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = " ".join(args) or "to be or not to be"
    with TaskClient.create(billing_mode="free") as client:  # BLOCKS_CDM_URL + BLOCKS_API_KEY
        result = run(client, text)
    print(f"tokens:    {' '.join(result['words'])}")
    print(f"audio:     {result['audioBytes']} bytes (sha256 {result['audioSha256'][:16]}...)")
    print(f"broadcast: {result['broadcast']}")
    print(f"task:      {result['taskId']} {result['state']}, summary {result['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
