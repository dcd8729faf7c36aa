"""The async_model agent: an ``async def`` handler that waits on a (slow) model API.

It sends the request's text to a streaming completion endpoint with ``httpx.AsyncClient``
and writes each token to the task's stream as it arrives, then returns the whole answer as
an artifact. While it waits, it holds no thread: one instance keeps thousands of such tasks
in flight (docs/async.md). ``MODEL_API_URL`` says where the model is (default: the
simulated one of ``model_server.py``, ``http://127.0.0.1:8765``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from blocks_network import AsyncTaskContext, StartTaskMessage

DEFAULT_MODEL_API_URL = "http://127.0.0.1:8765"
#: A slow model: generous, but every wait has a bound.
MODEL_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


async def handler(task: StartTaskMessage, ctx: AsyncTaskContext) -> dict[str, Any]:
    """Stream the model's tokens to the consumer; return the full answer."""
    prompt = next((part["text"] for part in task.request_parts if "text" in part), "")
    url = os.environ.get("MODEL_API_URL", DEFAULT_MODEL_API_URL).rstrip("/") + "/v1/complete"
    await ctx.report_status("asking the model")
    tokens: list[str] = []
    # A cancel arrives as CancelledError at the current await: the `async with` blocks close
    # the model request and the stream, and the task ends `canceled`.
    async with (
        httpx.AsyncClient(timeout=MODEL_TIMEOUT) as model,
        model.stream("POST", url, json={"prompt": prompt}) as reply,
        ctx.create_stream() as stream,  # the card's only stream: outbound bytes
    ):
        reply.raise_for_status()  # a failing model fails the task with the HTTP error
        async for line in reply.aiter_lines():
            if line:
                token = json.loads(line)["token"]
                tokens.append(token)
                await stream.write(token)
    answer = "".join(tokens)
    return {"artifacts": [{"data": answer, "mimeType": "text/plain", "outputId": "result"}]}
