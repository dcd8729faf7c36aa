"""The chat_agent agent: a multi-turn conversation carried in artifacts, not in the agent.

Each task is one turn. The consumer sends the user's message (part ``text``) and, from the
second turn on, the transcript the previous turn returned (part ``history``, a JSON file).
The agent answers and returns the new transcript as an artifact, so any instance can
serve any turn and nothing is kept between tasks.
"""

from __future__ import annotations

import json
import re
from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

_NAME = re.compile(r"\bmy name is (\w+)", re.IGNORECASE)


def _history(task: StartTaskMessage, ctx: TaskContext) -> list[dict[str, str]]:
    for part in task.request_parts:
        if part.get("partId") == "history":
            data = ctx.download_input_artifact(part).data  # inline or uploaded, same call
            history = json.loads(data)
            if not isinstance(history, list):
                raise ValueError("the history part must be a JSON list of {role, text}")
            return history
    return []


def reply_to(text: str, history: list[dict[str, str]]) -> str:
    """A tiny rule-based bot that remembers what the transcript says."""
    said = [turn["text"] for turn in history if turn.get("role") == "user"]
    names = [m.group(1) for m in map(_NAME.search, [*said, text]) if m]
    if _NAME.search(text):
        return f"Nice to meet you, {names[-1]}!"
    if "my name" in text.lower():
        return f"Your name is {names[-1]}." if names else "You have not told me your name yet."
    return f"You said {text!r}. That is message {len(said) + 1} of our conversation."


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Answer the ``text`` part; return the reply and the updated transcript."""
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    history = _history(task, ctx)
    reply = reply_to(text, history)
    history += [{"role": "user", "text": text}, {"role": "agent", "text": reply}]
    return {
        "artifacts": [
            {"data": reply, "mimeType": "text/plain", "outputId": "reply"},
            {
                "data": json.dumps(history),
                "mimeType": "application/json",
                "fileName": "history.json",
                "outputId": "history",
            },
        ]
    }
