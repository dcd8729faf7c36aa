"""The stock_sim agent: a pipe task that streams simulated prices until it is stopped.

Send JSON text such as ``{"symbols": ["ACME", "INITECH"], "intervalSeconds": 1}``. Every
interval the agent writes one event per symbol on its ``prices`` stream (a random walk),
until the consumer cancels the task or its duration (minutes) runs out; then it returns a
summary artifact. Pipe tasks are how an agent serves a feed rather than an answer.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

DEFAULT_SYMBOLS = ("ACME", "INITECH")
DEFAULT_INTERVAL_S = 1.0
MIN_INTERVAL_S = 0.01


def _settings(task: StartTaskMessage) -> tuple[list[str], float]:
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    try:
        request = json.loads(text) if text.strip() else {}
    except ValueError:
        request = {"symbols": text.split()}
    if not isinstance(request, dict):
        request = {}
    symbols = [str(s) for s in request.get("symbols") or DEFAULT_SYMBOLS]
    interval = float(request.get("intervalSeconds", DEFAULT_INTERVAL_S))
    return symbols, max(MIN_INTERVAL_S, interval)


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Tick until canceled or expired; return how many ticks and the last prices."""
    symbols, interval = _settings(task)
    rng = random.Random(task.task_id)
    prices = {symbol: 100.0 for symbol in symbols}
    stream = ctx.create_stream(metadata={"symbols": symbols, "intervalSeconds": interval})
    ticks = 0
    # wait() returns True once the task is canceled, terminated or expired.
    while not ctx.cancel_event.wait(interval if ticks else 0):
        ticks += 1
        now = int(time.time() * 1000)
        for symbol in symbols:
            prices[symbol] = round(max(0.01, prices[symbol] * (1 + rng.gauss(0, 0.01))), 2)
            stream.write({"tick": ticks, "symbol": symbol, "price": prices[symbol], "ts": now})
    summary = {"ticks": ticks, "last": prices, "expired": ctx.is_expired}
    return {"artifacts": [{"data": json.dumps(summary), "mimeType": "application/json"}]}
