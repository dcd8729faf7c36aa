"""The echo_stream agent: a request task that streams its answer word by word.

The card declares one outbound ``bytes`` stream, so ``ctx.create_stream()`` needs no
options. Consumers open it as it is announced (see examples/stream-consumer); the full
answer is also returned as an artifact, because stream data is live-only.
"""

from __future__ import annotations

from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

#: Pause between words, so the stream is visibly live.
WORD_DELAY_S = 0.02


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Write each word of the request to the stream, then return the whole text."""
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    stream = ctx.create_stream()  # the card's only stream: outbound bytes
    for index, word in enumerate(text.split()):
        if ctx.cancel_event.wait(WORD_DELAY_S):
            break  # canceled: stop writing; what was written stays written
        stream.write(word if index == 0 else " " + word)
    stream.end()  # optional: the runtime ends a request task's streams before its terminal
    return {"artifacts": [{"data": text, "mimeType": "text/plain", "outputId": "result"}]}
