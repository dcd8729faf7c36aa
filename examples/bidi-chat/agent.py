"""The bidi_chat agent: a bidirectional events stream; it answers in upper case until "bye".

Both sides read and write the same ``chat`` stream; each side only sees the other's
messages. After answering "bye" the agent waits for the consumer to hang up: a pipe task
ends when its consumer cancels it (or when its duration runs out).
"""

from __future__ import annotations

from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

#: How long the agent waits for the next message before giving up on the conversation.
IDLE_TIMEOUT_S = 60.0


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Answer each ``{"text": ...}`` with its upper-case version; stop after "bye"."""
    chat = ctx.create_stream()  # the card's only stream: "chat", bidirectional events
    turns = 0
    try:
        for message in chat.events(timeout=IDLE_TIMEOUT_S):
            text = str(message.get("text", "")) if isinstance(message, dict) else str(message)
            turns += 1
            chat.write({"text": text.upper(), "turn": turns})
            chat.flush()  # answer now, not after the batching delay
            if text.strip().lower() == "bye" or ctx.is_cancelled:
                break
    except TimeoutError:
        ctx.report_status(f"no message for {IDLE_TIMEOUT_S:g} s; leaving the chat")
    # Returned once the consumer hangs up: the result is published before the terminal.
    ctx.cancel_event.wait(IDLE_TIMEOUT_S)
    return {"artifacts": [{"data": f"chatted for {turns} turns", "mimeType": "text/plain"}]}
