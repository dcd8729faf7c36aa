"""The adder_card agent: adds ``a`` and ``b`` sent as JSON text, e.g. ``{"a": 1, "b": 2}``.

Unlike the built-in ``adder`` (which completes with ``"ok": false``), bad input fails the
task: raising from a handler ends it ``failed`` with ``error`` = the exception's type and
message (``ValueError: not JSON: ...``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from blocks_network.types import StartTaskMessage, TaskContext

USAGE = 'send JSON text with two numbers, such as {"a": 1, "b": 2}'


def _number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """One ``application/json`` artifact ``{"ok": true, "a", "b", "sum"}``."""
    text = next((part["text"] for part in task.request_parts if "text" in part), "")
    try:
        request = json.loads(text)
    except ValueError:
        raise ValueError(f"not JSON: {text!r}; {USAGE}") from None
    a = _number(request.get("a")) if isinstance(request, dict) else None
    b = _number(request.get("b")) if isinstance(request, dict) else None
    if a is None or b is None:
        raise ValueError(f"missing numbers a and b; {USAGE}")
    result = {"ok": True, "a": a, "b": b, "sum": a + b}
    return {
        "artifacts": [
            {
                "data": json.dumps(result, indent=2),
                "mimeType": "application/json",
                "outputId": "result",
            }
        ]
    }
