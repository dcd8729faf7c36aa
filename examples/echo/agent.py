"""The echo agent: answers with the text it was sent.

Run it from this folder with ``blocks-run`` (card mode reads agent-card.json), then
``blocks send echo "hello"``.
"""

from __future__ import annotations

from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

PREFIX = "Echoed request: "


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """One ``text/plain`` artifact: the prefix and the first text part."""
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    return {"artifacts": [{"data": PREFIX + text, "mimeType": "text/plain", "outputId": "result"}]}
