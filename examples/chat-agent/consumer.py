"""Consumer of examples/chat-agent: a conversation of several tasks, one per turn.

    python examples/chat-agent/consumer.py "my name is Ada" "how are you?" "what is my name?"

Each turn sends the message and the previous turn's ``history.json`` artifact back.
"""

from __future__ import annotations

import sys

from blocks_network import TaskClient, file_part, text_part

AGENT = "chat_agent"
TIMEOUT_S = 30.0


def run(client: TaskClient, messages: list[str]) -> list[tuple[str, str]]:
    """Send each message as one task; returns ``(message, reply)`` pairs."""
    history: bytes | None = None
    transcript = []
    for message in messages:
        parts = [text_part(message)]
        if history is not None:
            parts.append(
                file_part(
                    history,
                    part_id="history",
                    file_name="history.json",
                    content_type="application/json",
                )
            )
        with client.send_message(AGENT, parts) as session:
            terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
            if terminal.state != "completed":
                raise RuntimeError(f"turn {message!r} ended {terminal.state}: {terminal.error}")
            artifacts = {
                ref.mime_type: session.download_artifact(ref).data
                for ref in session.list_artifacts()
            }
        transcript.append((message, artifacts["text/plain"].decode()))
        history = artifacts["application/json"]
    return transcript


def main(argv: list[str] | None = None) -> int:
    messages = (sys.argv[1:] if argv is None else argv) or [
        "my name is Ada",
        "how are you?",
        "what is my name?",
    ]
    with TaskClient.create(billing_mode="free") as client:
        for said, heard in run(client, messages):
            print(f"you:   {said}\nagent: {heard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
