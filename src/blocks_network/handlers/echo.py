"""Built-in ``echo`` handler (protocol §9.7): answers with the first text it was sent."""

from __future__ import annotations

import json
from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

__all__ = ["echo_handler", "request_text"]

ECHO_PREFIX = "Echoed request: "


def request_text(parts: list[dict[str, Any]]) -> str:
    """The first part's ``text`` value, else the JSON dump of the wire parts."""
    for part in parts:
        text = part.get("text")
        if text is not None:
            return str(text)
    return json.dumps(parts)


def echo_handler(task: StartTaskMessage, ctx: TaskContext | None = None) -> dict[str, Any]:
    """``Echoed request: <text>`` as one ``text/plain`` artifact."""
    return {
        "artifacts": [
            {"data": ECHO_PREFIX + request_text(task.request_parts), "mimeType": "text/plain"}
        ]
    }
