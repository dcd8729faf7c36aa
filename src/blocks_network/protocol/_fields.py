"""Typed field readers for wire documents: every parse error becomes a ProtocolError.

Each reader takes the document, the camelCase key and ``where`` (a label such as
``"StartTask"``) and names ``where.key`` in its message, so a malformed message never surfaces
as KeyError/TypeError and the message says which field to fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from .errors import ProtocolError

_T = TypeVar("_T", bound=str)

JsonObject = Mapping[str, Any]


def type_name(value: object) -> str:
    """Return the JSON-ish name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _bad(where: str, key: str, expected: str, value: object) -> ProtocolError:
    return ProtocolError(f"{where}.{key}: expected {expected}, got {type_name(value)}")


def as_object(value: object, where: str) -> JsonObject:
    """Return ``value`` as a mapping or raise ProtocolError naming ``where``."""
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{where}: expected a JSON object, got {type_name(value)}")
    return value


def _missing(where: str, key: str) -> ProtocolError:
    return ProtocolError(f"{where}.{key}: missing required field")


def req_str(obj: JsonObject, key: str, where: str, *, non_empty: bool = True) -> str:
    """Read a required string (non-empty unless ``non_empty=False``)."""
    if obj.get(key) is None:
        raise _missing(where, key)
    value = obj[key]
    if not isinstance(value, str):
        raise _bad(where, key, "a string", value)
    if non_empty and not value:
        raise ProtocolError(f"{where}.{key}: must not be empty")
    return value


def opt_str(obj: JsonObject, key: str, where: str) -> str | None:
    """Read an optional string; absent or null gives None."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(where, key, "a string", value)
    return value


def _check_int(value: object, key: str, where: str) -> int:
    # bool is an int subclass in Python but never a valid wire integer.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, key, "an integer", value)
    return value


def req_int(obj: JsonObject, key: str, where: str, *, minimum: int | None = None) -> int:
    """Read a required integer (booleans rejected), optionally bounded below."""
    if obj.get(key) is None:
        raise _missing(where, key)
    value = _check_int(obj[key], key, where)
    if minimum is not None and value < minimum:
        raise ProtocolError(f"{where}.{key}: must be ≥ {minimum}, got {value}")
    return value


def opt_int(obj: JsonObject, key: str, where: str, *, minimum: int | None = None) -> int | None:
    """Read an optional integer (booleans rejected); absent or null gives None."""
    if obj.get(key) is None:
        return None
    return req_int(obj, key, where, minimum=minimum)


def opt_number(obj: JsonObject, key: str, where: str) -> float | None:
    """Read an optional finite number (int kept as int; booleans rejected)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(where, key, "a number", value)
    if not math.isfinite(value):
        raise ProtocolError(f"{where}.{key}: must be a finite number")
    return value


def req_bool(obj: JsonObject, key: str, where: str) -> bool:
    """Read a required boolean."""
    if obj.get(key) is None:
        raise _missing(where, key)
    value = obj[key]
    if not isinstance(value, bool):
        raise _bad(where, key, "a boolean", value)
    return value


def opt_bool(obj: JsonObject, key: str, where: str, default: bool) -> bool:
    """Read an optional boolean, ``default`` when absent or null."""
    if obj.get(key) is None:
        return default
    return req_bool(obj, key, where)


def req_object(obj: JsonObject, key: str, where: str) -> dict[str, Any]:
    """Read a required JSON object; returns a shallow copy."""
    if obj.get(key) is None:
        raise _missing(where, key)
    value = obj[key]
    if not isinstance(value, Mapping):
        raise _bad(where, key, "an object", value)
    return dict(value)


def opt_object(obj: JsonObject, key: str, where: str) -> dict[str, Any] | None:
    """Read an optional JSON object (shallow copy); absent or null gives None."""
    if obj.get(key) is None:
        return None
    return req_object(obj, key, where)


def req_list(obj: JsonObject, key: str, where: str) -> list[Any]:
    """Read a required JSON array."""
    if obj.get(key) is None:
        raise _missing(where, key)
    value = obj[key]
    if not isinstance(value, (list, tuple)):
        raise _bad(where, key, "an array", value)
    return list(value)


def opt_list(obj: JsonObject, key: str, where: str) -> list[Any] | None:
    """Read an optional JSON array; absent or null gives None."""
    if obj.get(key) is None:
        return None
    return req_list(obj, key, where)


def req_choice(obj: JsonObject, key: str, where: str, allowed: tuple[_T, ...]) -> _T:
    """Read a required string that must be one of ``allowed``."""
    value = req_str(obj, key, where, non_empty=False)
    return check_choice(value, key, where, allowed)


def opt_choice(obj: JsonObject, key: str, where: str, allowed: tuple[_T, ...]) -> _T | None:
    """Read an optional string that must be one of ``allowed`` when present."""
    value = opt_str(obj, key, where)
    return None if value is None else check_choice(value, key, where, allowed)


def check_choice(value: str, key: str, where: str, allowed: tuple[_T, ...]) -> _T:
    """Return ``value`` typed as one of ``allowed`` or raise ProtocolError listing them."""
    for candidate in allowed:
        if value == candidate:
            return candidate
    choices = ", ".join(repr(a) for a in allowed)
    raise ProtocolError(f"{where}.{key}: must be one of {choices}, got {value!r}")


def expect_type(obj: JsonObject, expected: str, where: str) -> None:
    """Raise ProtocolError unless ``obj["type"] == expected``."""
    actual = obj.get("type")
    if actual != expected:
        raise ProtocolError(f"{where}.type: expected {expected!r}, got {actual!r}")


@contextmanager
def message_context(message_type: str, task_id: str | None) -> Iterator[None]:
    """Attach ``message_type``/``task_id`` to ProtocolErrors raised inside the block."""
    try:
        yield
    except ProtocolError as exc:
        if exc.message_type is None:
            exc.message_type = message_type
        if exc.task_id is None:
            exc.task_id = task_id
        raise


def put(wire: dict[str, Any], key: str, value: object) -> None:
    """Set ``wire[key] = value`` unless value is None (optional fields are omitted)."""
    if value is not None:
        wire[key] = value
