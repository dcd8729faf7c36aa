"""Primitive checks for agent-card validation; each failure is an AgentCardError at a path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeVar

from .errors import AgentCardError

_T = TypeVar("_T", bound=str)

ContentClass = Literal["form", "text", "file"]

# RFC 6838 restricted-name characters; '*' allowed so wildcards such as image/* validate.
_MEDIA_TYPE_RE: Final = re.compile(
    r"(?:[a-z0-9][a-z0-9!#$&^_.+-]*|\*)/(?:[a-z0-9][a-z0-9!#$&^_.+-]*|\*)(?:\s*;.*)?",
    re.IGNORECASE,
)
_FORM_TYPES: Final = frozenset({"application/json", "application/x-www-form-urlencoded"})


def join(path: str, key: str) -> str:
    """``path.key`` (or ``key`` at the root)."""
    return f"{path}.{key}" if path else key


def content_class(content_type: str) -> ContentClass:
    """Classify a media type: JSON/form types are ``form``, ``text/*`` is ``text``, the rest
    ``file``."""
    base = content_type.split(";", 1)[0].strip().lower()
    if base in _FORM_TYPES or base.endswith("+json"):
        return "form"
    if base.startswith("text/"):
        return "text"
    return "file"


def obj(value: object, path: str) -> Mapping[str, Any]:
    """``value`` as an object, else AgentCardError."""
    if not isinstance(value, Mapping):
        raise AgentCardError(path, "must be an object")
    return value


def opt_obj(m: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    """An optional object member."""
    return None if m.get(key) is None else obj(m[key], join(path, key))


def string(m: Mapping[str, Any], key: str, path: str, *, required: bool) -> str | None:
    """A non-empty string member (None when optional and absent)."""
    p = join(path, key)
    value = m.get(key)
    if value is None:
        if required:
            raise AgentCardError(p, "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise AgentCardError(p, "must be a non-empty string")
    return value


def req_string(m: Mapping[str, Any], key: str, path: str) -> str:
    """A required non-empty string member."""
    value = string(m, key, path, required=True)
    if value is None:  # unreachable: required=True raises instead
        raise AgentCardError(join(path, key), "is required")
    return value


def boolean(m: Mapping[str, Any], key: str, path: str, *, required: bool) -> bool | None:
    """A boolean member (None when optional and absent)."""
    p = join(path, key)
    value = m.get(key)
    if value is None:
        if required:
            raise AgentCardError(p, "is required (true or false)")
        return None
    if not isinstance(value, bool):
        raise AgentCardError(p, "must be true or false")
    return value


def integer(
    m: Mapping[str, Any], key: str, path: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    """An optional integer member within bounds (booleans rejected)."""
    p = join(path, key)
    value = m.get(key)
    if value is None:
        return None
    in_range = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= minimum
        and (maximum is None or value <= maximum)
    )
    if not in_range:
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"≥ {minimum}"
        raise AgentCardError(p, f"must be an integer {bound}")
    return int(value)


def choice(
    m: Mapping[str, Any], key: str, path: str, allowed: tuple[_T, ...], *, required: bool
) -> _T | None:
    """A member that must be one of ``allowed``."""
    p = join(path, key)
    value = m.get(key)
    if value is None:
        if required:
            raise AgentCardError(p, f"is required (one of {', '.join(allowed)})")
        return None
    for candidate in allowed:
        if value == candidate:
            return candidate
    raise AgentCardError(p, f"must be one of {', '.join(allowed)}, got {value!r}")


def is_media_type(value: str) -> bool:
    """True if ``value`` looks like ``type/subtype`` (parameters and ``*`` wildcards allowed)."""
    return _MEDIA_TYPE_RE.fullmatch(value.strip()) is not None


def media_type(m: Mapping[str, Any], key: str, path: str, *, required: bool) -> str | None:
    """A media type member such as ``image/png`` or ``text/plain; charset=utf-8``."""
    value = string(m, key, path, required=required)
    if value is not None and not is_media_type(value):
        raise AgentCardError(
            join(path, key), f"must be a media type like 'image/png', got {value!r}"
        )
    return value


def array(m: Mapping[str, Any], key: str, path: str) -> list[Any] | None:
    """An optional array member."""
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise AgentCardError(join(path, key), "must be an array")
    return list(value)


def string_list(m: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    """An optional array of non-empty strings."""
    items = array(m, key, path)
    if items is None:
        return None
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise AgentCardError(f"{join(path, key)}[{i}]", "must be a non-empty string")
    return tuple(items)


def forbid(m: Mapping[str, Any], keys: tuple[str, ...], path: str, why: str) -> None:
    """Reject any of ``keys`` present in ``m``, explaining ``why``."""
    for key in keys:
        if key in m:
            raise AgentCardError(join(path, key), f"is not allowed {why}")


def unique_id(seen: dict[str, str], value: str, path: str) -> None:
    """Record ``value`` as used at ``path``; raise if an earlier entry used it."""
    if value in seen:
        raise AgentCardError(path, f"duplicate id {value!r} (also used at {seen[value]})")
    seen[value] = path
