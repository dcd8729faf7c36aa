"""Built-in ``adder`` handler (protocol §9.7): adds ``a`` and ``b`` of a math_add request.

A part is read as its JSON text when that parses to an object (``{"a": 1, "b": 2}``), as
``{"text": ...}`` when the text is not a JSON object, and as its extra wire keys when it has
no text. Parts with a ``kind`` other than ``math_add`` are skipped. The task completes either
way; a request without numbers answers ``{"ok": false, ...}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from blocks_network.handlers.echo import request_text
from blocks_network.types import StartTaskMessage, TaskContext

__all__ = ["MISSING_OPERANDS", "adder_handler", "find_operands"]

MISSING_OPERANDS = "Missing math_add request with numeric a and b"
_MATH_ADD = "math_add"
_KNOWN_PART_KEYS = frozenset({"partId", "text", "contentType", "artifactRef"})


def _is_number(value: object) -> bool:
    # bool is an int in Python but never an operand.
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _content(part: Mapping[str, Any]) -> Mapping[str, Any]:
    text = part.get("text")
    if isinstance(text, str):
        try:
            parsed = json.loads(text)
        except ValueError:
            return {"text": text}
        return parsed if isinstance(parsed, dict) else {"text": text}
    return {k: v for k, v in part.items() if k not in _KNOWN_PART_KEYS}


def find_operands(parts: list[dict[str, Any]]) -> tuple[float, float] | None:
    """``(a, b)`` of the first math_add part with two finite numbers, else None."""
    for part in parts:
        content = _content(part)
        kind = content.get("kind")
        if kind is not None and kind != _MATH_ADD:
            continue
        a, b = content.get("a"), content.get("b")
        if _is_number(a) and _is_number(b):
            return a, b  # type: ignore[return-value]
    return None


def adder_handler(task: StartTaskMessage, ctx: TaskContext | None = None) -> dict[str, Any]:
    """``{"ok": true, "a", "b", "sum"}`` (2-space JSON) as one ``application/json`` artifact."""
    operands = find_operands(task.request_parts)
    if operands is None:
        result: dict[str, Any] = {
            "ok": False,
            "error": MISSING_OPERANDS,
            "input": request_text(task.request_parts),
        }
    else:
        a, b = operands
        result = {"ok": True, "a": a, "b": b, "sum": a + b}
    return {"artifacts": [{"data": json.dumps(result, indent=2), "mimeType": "application/json"}]}
