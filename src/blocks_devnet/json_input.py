"""JSON that arrived from the network, parsed by one function every route uses.

``json.loads`` alone accepts what no other JSON peer reads back (``NaN``, ``Infinity``),
strings with lone UTF-16 surrogates (which UTF-8, SQLite and CBOR encoders refuse later,
far from the request), and raises ``RecursionError`` rather than ``ValueError`` on deeply
nested input. :func:`parse_json` refuses all of these up front with :class:`InvalidJson`,
a ``ValueError``, so a route's ``except ValueError`` answers them with its own 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Deepest nesting of arrays and objects accepted (well inside the interpreter's stack,
#: so re-serialising an accepted value can never overflow it).
MAX_JSON_DEPTH = 128

# A ``\uD800``-``\uDFFF`` escape: the only way a surrogate can reach a parsed string.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidJson(ValueError):
    """The text is not JSON this network accepts; the message says what is wrong."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON number")


# One decoder for every call: ``json.loads`` with an argument builds a new one each time.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_json(data: str | bytes) -> Any:
    """Parse ``data`` (UTF-8 if bytes) as strict JSON and return the value.

    Raises :class:`InvalidJson` for text that is not UTF-8 or not JSON, ``NaN`` and
    ``Infinity``, nesting deeper than :data:`MAX_JSON_DEPTH`, and strings (keys included)
    holding a lone surrogate. Pure; never raises anything else.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise InvalidJson("not UTF-8 text") from None
    if text.startswith("\ufeff"):
        # What json.loads says about a byte-order mark (the decoder itself does not check).
        raise InvalidJson(
            str(json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0))
        )
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise InvalidJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except InvalidJson:
        raise
    except ValueError as exc:
        raise InvalidJson(str(exc)) from None
    # Each container costs at least one bracket, so few brackets means shallow: the walk
    # below runs only for large or surrogate-bearing input.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH or _SURROGATE_ESCAPE.search(text):
        _check_depth_and_strings(value)
    return value


def _check_depth_and_strings(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_string(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
