"""Consumer of examples/bidi-chat: talk on a bidirectional stream.

    python examples/bidi-chat/consumer.py hello "how are you" bye

Each line is written to the ``chat`` stream and the agent's answer read back from it;
after "bye" the consumer cancels the pipe task (hangs up).
"""

from __future__ import annotations

import sys
from typing import Any

from blocks_network import TaskClient, text_part

AGENT = "bidi_chat"
TIMEOUT_S = 30.0


def run(client: TaskClient, lines: list[str]) -> dict[str, Any]:
    """Say each line, collect each answer; returns the transcript and the final state."""
    session = client.send_message(
        AGENT, [text_part("hi")], task_kind="pipe", duration=1, stream=True
    )
    with session:
        chat = session.wait_for_stream("chat", timeout=TIMEOUT_S).open()
        answers = chat.events(timeout=TIMEOUT_S)  # only the agent's messages arrive here
        transcript = []
        for line in lines:
            chat.write({"text": line})
            chat.flush()
            reply = next(answers)
            transcript.append((line, reply["text"]))
            if line.strip().lower() == "bye":
                break
        chat.close()
        session.cancel()  # hang up: the pipe task ends canceled
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        return {"taskId": session.task_id, "transcript": transcript, "state": terminal.state}


def main(argv: list[str] | None = None) -> int:
    lines = (sys.argv[1:] if argv is None else argv) or ["hello", "how are you?", "bye"]
    with TaskClient.create(billing_mode="free") as client:
        result = run(client, lines)
    for said, heard in result["transcript"]:
        print(f"you:   {said}\nagent: {heard}")
    print(f"task {result['taskId']}: {result['state']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
