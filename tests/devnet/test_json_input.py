"""parse_json: strict JSON from the network, refused with a ValueError a route can answer."""

from __future__ import annotations

import json

import pytest

from blocks_devnet.json_input import MAX_JSON_DEPTH, InvalidJson, parse_json


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, "x", null, true]}',
        '"caf\\u00e9 \\ud83d\\ude00"',  # a surrogate *pair* is one character
        "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH,
        '"\\\\ud800"',  # an escaped backslash, not a surrogate
        "[" + ",".join(["{}"] * 500) + "]",  # many brackets, shallow
        "1" * 4000,
    ],
)
def test_accepts_json(text: str) -> None:
    assert parse_json(text) == parse_json(text.encode())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "Expecting"),
        (b'{"a": NaN}', "NaN"),
        (b"[Infinity]", "Infinity"),
        (b"-Infinity", "Infinity"),
        (b'"\xff"', "UTF-8"),
        (b'"\\ud800"', "surrogate"),
        (b'{"\\udc00": 1}', "surrogate"),
        (b'["ok", {"deep": "\\udfff"}]', "surrogate"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "deeper"),
        (b"[" * 100_000, "deeper"),
        (b'{"a":' * 50_000, "deeper"),
        (b"1" * 5000, "digits"),
    ],
)
def test_refuses_what_other_peers_cannot_read(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidJson, match=reason):
        parse_json(data)
    assert issubclass(InvalidJson, ValueError)


@pytest.mark.parametrize("text", ["\ufeff1", "[1,", '{"a" 1}', "", "tru"])
def test_errors_read_as_json_loads_words_them(text: str) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(InvalidJson) as got:
        parse_json(text)
    assert str(got.value) == str(expected.value)
