"""Filter expressions: grammar, precedence, PubNub-like semantics and malformed-input errors."""

from __future__ import annotations

import pytest

from blocks_devnet.realtime import filter_expr
from blocks_devnet.realtime.filter_expr import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING_DEPTH,
    CompiledFilter,
    FilterExpressionError,
    compile_filter,
)

# The two expressions the SDK sends, exactly as written in the protocol spec.
STREAM_READER = "meta.sender != '<uuid>'"
AGENT_CONTROL = "meta.instance == 'AG-x' || meta.broadcast == \"true\""


def test_public_surface_is_pinned() -> None:
    assert filter_expr.__all__ == [
        "MAX_EXPRESSION_LENGTH",
        "MAX_NESTING_DEPTH",
        "CompiledFilter",
        "FilterExpressionError",
        "compile_filter",
    ]


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"sender": "<uuid>"}, False),
        ({"sender": "someone-else"}, True),
        ({"sender": "<uuid>", "protocolVersion": "1"}, False),
        ({}, True),  # a missing field makes != true
        (None, True),  # no meta at all is evaluated as {}
        ({"sender": None}, True),
    ],
)
def test_stream_reader_expression(meta: object, expected: bool) -> None:
    assert compile_filter(STREAM_READER).matches(meta) is expected


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"instance": "AG-x"}, True),
        ({"instance": "AG-y"}, False),
        ({"broadcast": "true"}, True),
        ({"broadcast": True}, True),  # JSON true equals the string "true"
        ({"broadcast": "false"}, False),
        ({"instance": "AG-y", "broadcast": "true"}, True),
        ({}, False),
        (None, False),
    ],
)
def test_agent_control_expression(meta: object, expected: bool) -> None:
    assert compile_filter(AGENT_CONTROL).matches(meta) is expected


MATCH_TABLE: list[tuple[str, object, bool]] = [
    # == and != on strings, numbers and booleans
    ("meta.a == 'x'", {"a": "x"}, True),
    ("meta.a == 'x'", {"a": "X"}, False),
    ("meta.a != 'x'", {"a": "x"}, False),
    ("meta.a != 'x'", {"a": "y"}, True),
    ("meta.n == 5", {"n": 5}, True),
    ("meta.n == 5", {"n": 5.0}, True),
    ("meta.n == 5", {"n": 6}, False),
    ("meta.n != 5", {"n": 6}, True),
    ("meta.f == 2.5", {"f": 2.5}, True),
    ("meta.n == -3", {"n": -3}, True),
    ("meta.n == -1.5e2", {"n": -150}, True),
    ("meta.b == true", {"b": True}, True),
    ("meta.b == true", {"b": False}, False),
    ("meta.b == false", {"b": False}, True),
    ("meta.b == true", {"b": "TRUE"}, True),
    ("meta.b == 'true'", {"b": True}, True),
    ("meta.b == true", {"b": 1}, False),  # bool never equals a number
    ("meta.z == null", {"z": None}, True),
    ("meta.z == null", {}, False),  # missing is not null
    ("meta.z != null", {}, True),
    # numeric coercion: numeric strings compare numerically with numbers
    ("meta.n == 5", {"n": "5"}, True),
    ("meta.n == 5", {"n": "5.0"}, True),
    ("meta.n == '5'", {"n": 5}, True),
    ("meta.n == 5", {"n": "five"}, False),
    ("meta.n != 5", {"n": "five"}, True),
    ("meta.n > 9", {"n": "10"}, True),
    ("meta.n < 9", {"n": "10"}, False),
    ("meta.n >= 10", {"n": "10"}, True),
    ("meta.n <= 10", {"n": "10.5"}, False),
    ("meta.n > 1", {"n": "1e3"}, True),
    ("meta.n > 1", {"n": "nan"}, False),  # only plain decimal spellings are numbers
    ("meta.n > 1", {"n": " 5"}, False),
    # string vs string is lexicographic, even when both look numeric
    ("meta.s == '5'", {"s": "5.0"}, False),
    ("meta.s > '10'", {"s": "9"}, True),
    ("meta.s < 'b'", {"s": "a"}, True),
    ("meta.s >= 'a'", {"s": "a"}, True),
    ("meta.s <= 'a'", {"s": "b"}, False),
    # every ordering operator on numbers, including the boundary
    ("meta.n < 3", {"n": 2}, True),
    ("meta.n < 3", {"n": 3}, False),
    ("meta.n <= 3", {"n": 3}, True),
    ("meta.n > 3", {"n": 3}, False),
    ("meta.n > 3", {"n": 4}, True),
    ("meta.n >= 3", {"n": 3}, True),
    ("meta.n >= 3", {"n": 2.99}, False),
    ("meta.n < -1", {"n": -2}, True),
    # mismatched types: ordering and equality are false
    ("meta.n < 3", {"n": "abc"}, False),
    ("meta.n >= 'a'", {"n": 1}, False),
    ("meta.n < 3", {"n": True}, False),
    ("meta.n == 'x'", {"n": {"x": 1}}, False),
    ("meta.n == 1", {"n": [1]}, False),
    ("meta.n > 0", {"n": None}, False),
    # missing fields: only != is true
    ("meta.gone == 'x'", {}, False),
    ("meta.gone != 'x'", {}, True),
    ("meta.gone < 1", {}, False),
    ("meta.gone > 1", {}, False),
    ("meta.gone <= 1", {}, False),
    ("meta.gone >= 1", {}, False),
    ("meta.gone LIKE '*'", {}, False),
    ("meta.gone CONTAINS 'x'", {}, False),
    # nested paths and bracket form
    ("meta.a.b == 1", {"a": {"b": 1}}, True),
    ("meta.a.b.c == 'deep'", {"a": {"b": {"c": "deep"}}}, True),
    ("meta.a.b == 1", {"a": "not a dict"}, False),
    ("meta.a.b != 1", {"a": "not a dict"}, True),
    ("meta.a.b == 1", {"a": {}}, False),
    ("meta[\"content-type\"] == 'text'", {"content-type": "text"}, True),
    ("meta['a'][\"b c\"] == 2", {"a": {"b c": 2}}, True),
    ("meta.a['b'].c == 3", {"a": {"b": {"c": 3}}}, True),
    ("meta.list[1] == 'y'", {"list": ["x", "y"]}, True),
    ("meta.list[2] == 'y'", {"list": ["x", "y"]}, False),
    ("meta.list[0] == 'x'", {"list": {"0": "x"}}, False),  # an index only reads lists
    ("meta.true == 1", {"true": 1}, True),  # keywords are fine as key names
    # path on either side, and path vs path
    ("'x' == meta.a", {"a": "x"}, True),
    ("5 < meta.n", {"n": 6}, True),
    ("5 < meta.n", {"n": 4}, False),
    ("meta.a == meta.b", {"a": "1", "b": 1}, True),
    ("meta.a == meta.b", {"a": 1}, False),
    ("meta.a != meta.b", {"a": 1}, True),
    ("meta.a < meta.b", {"a": 1, "b": 2}, True),
    # LIKE: '*' wildcard, case-insensitive, whole-string match, strings only
    ("meta.s LIKE 'abc*'", {"s": "abcdef"}, True),
    ("meta.s LIKE 'abc*'", {"s": "ABCdef"}, True),
    ("meta.s LIKE 'abc*'", {"s": "xabc"}, False),
    ("meta.s LIKE '*abc'", {"s": "xxABC"}, True),
    ("meta.s LIKE 'a*c'", {"s": "a\nb\nc"}, True),
    ("meta.s LIKE 'a.c'", {"s": "abc"}, False),  # regex metacharacters are literal
    ("meta.s LIKE 'a.c'", {"s": "A.C"}, True),
    ("meta.s like 'x'", {"s": "X"}, True),
    ("meta.s LIKE '1*'", {"s": 123}, False),
    # CONTAINS: substring of a string (case-sensitive) or member of a list
    ("meta.s CONTAINS 'ell'", {"s": "hello"}, True),
    ("meta.s CONTAINS 'ELL'", {"s": "hello"}, False),
    ("meta.s contains 'zz'", {"s": "hello"}, False),
    ("meta.tags CONTAINS 'b'", {"tags": ["a", "b"]}, True),
    ("meta.tags CONTAINS 'c'", {"tags": ["a", "b"]}, False),
    ("meta.tags CONTAINS 2", {"tags": ["1", "2"]}, True),
    ("meta.n CONTAINS 1", {"n": 1}, False),
    # bare paths and boolean literals test truthiness
    ("meta.flag", {"flag": True}, True),
    ("meta.flag", {"flag": "yes"}, True),
    ("meta.flag", {"flag": "false"}, False),
    ("meta.flag", {"flag": ""}, False),
    ("meta.flag", {"flag": 0}, False),
    ("meta.flag", {"flag": None}, False),
    ("meta.flag", {}, False),
    ("!meta.flag", {}, True),
    ("true", None, True),
    ("false", {"a": 1}, False),
    # boolean operators
    ("meta.a == 1 && meta.b == 2", {"a": 1, "b": 2}, True),
    ("meta.a == 1 && meta.b == 2", {"a": 1, "b": 3}, False),
    ("meta.a == 1 || meta.b == 2", {"a": 0, "b": 2}, True),
    ("meta.a == 1 || meta.b == 2", {"a": 0, "b": 0}, False),
    ("meta.a == 1 && meta.b == 2 && meta.c == 3", {"a": 1, "b": 2, "c": 3}, True),
    ("meta.a == 1 && meta.b == 2 && meta.c == 3", {"a": 1, "b": 2, "c": 4}, False),
    ("meta.a == 1 || meta.b == 2 || meta.c == 3", {"c": 3}, True),
    ("meta.a == 1 || meta.b == 2 || meta.c == 3", {"c": 4}, False),
    ("!(meta.a == 1)", {"a": 1}, False),
    ("!(meta.a == 1)", {"a": 2}, True),
    ("!!(meta.a == 1)", {"a": 1}, True),
    ("! ! meta.flag", {"flag": 1}, True),
    # precedence: && binds tighter than ||, parentheses override
    ("meta.a == 1 || meta.b == 1 && meta.c == 1", {"a": 1}, True),
    ("(meta.a == 1 || meta.b == 1) && meta.c == 1", {"a": 1}, False),
    ("meta.a == 1 && meta.b == 1 || meta.c == 1", {"c": 1}, True),
    ("meta.a == 1 && (meta.b == 1 || meta.c == 1)", {"c": 1}, False),
    ("!(meta.a == 1) && meta.b == 1", {"a": 2, "b": 1}, True),
    ("!(meta.a == 1 || meta.b == 1)", {"b": 1}, False),
    ("!meta.a || meta.b == 1", {"a": 1, "b": 1}, True),
    ("!meta.a && meta.b == 1", {"a": 1, "b": 1}, False),
    ("((meta.a == 1))", {"a": 1}, True),
    # quotes and escapes
    ('meta.s == "double"', {"s": "double"}, True),
    ("meta.s == 'it\\'s'", {"s": "it's"}, True),
    ('meta.s == "say \\"hi\\""', {"s": 'say "hi"'}, True),
    ('meta.s == "it\'s"', {"s": "it's"}, True),
    ("meta.s == 'a\\\\b'", {"s": "a\\b"}, True),
    ("meta.s == 'line\\nbreak\\ttab'", {"s": "line\nbreak\ttab"}, True),
    ("meta.s == '\\u00e9t\\u00E9'", {"s": "été"}, True),
    ("meta.s == 'a && b || (c)'", {"s": "a && b || (c)"}, True),
    ("meta.s == ''", {"s": ""}, True),
    ("meta.s == 'héllo'", {"s": "héllo"}, True),
    # whitespace is free-form
    ("  meta.a==1&&meta.b!=2  ", {"a": 1, "b": 3}, True),
    ("meta.a\n==\t1", {"a": 1}, True),
]


@pytest.mark.parametrize(("expression", "meta", "expected"), MATCH_TABLE)
def test_matches(expression: str, meta: object, expected: bool) -> None:
    assert compile_filter(expression).matches(meta) is expected


@pytest.mark.parametrize(
    "meta", [None, [], ["sender"], "sender", 42, 3.5, True, object(), b"{}", {1: "int key"}]
)
def test_non_dict_meta_is_treated_as_empty(meta: object) -> None:
    assert compile_filter("meta.sender != 'me'").matches(meta) is True
    assert compile_filter("meta.sender == 'me'").matches(meta) is False


def test_matches_never_raises_on_odd_values() -> None:
    deep: list[object] = []
    cursor = deep
    for _ in range(5000):  # deeper than Python's recursion limit when compared with ==
        inner: list[object] = []
        cursor.append(inner)
        cursor = inner
    meta = {"a": deep, "b": deep, "n": float("nan"), "big": "9" * 5000, "o": object()}
    for expression in (
        "meta.a == meta.b",
        "meta.n > 1",
        "meta.n == meta.n",
        "meta.big > 1",
        "meta.o == 'x'",
        "meta.o < 1",
        "meta.o CONTAINS 'x'",
        "meta.a CONTAINS 1",
    ):
        assert isinstance(compile_filter(expression).matches(meta), bool)
    assert compile_filter("meta.big > 1").matches(meta) is False


def test_compiled_filter_exposes_source_and_is_cached() -> None:
    compiled = compile_filter(STREAM_READER)
    assert isinstance(compiled, CompiledFilter)
    assert compiled.source == STREAM_READER
    assert compile_filter(STREAM_READER) is compiled
    assert compiled == CompiledFilter(STREAM_READER, lambda m: False)  # equality is by source


DATA_CASES: list[tuple[str, object, object, bool]] = [
    # (expression, meta, data, expected)
    ("data.text == 'hi'", None, {"text": "hi"}, True),
    ("data.text == 'hi'", {"text": "hi"}, {"text": "no"}, False),
    ("data.user['role'] == 'admin'", None, {"user": {"role": "admin"}}, True),
    ("data.items[1] == 2", None, {"items": [1, 2]}, True),
    ("data.score > 80 && meta.priority == 'high'", {"priority": "high"}, {"score": 81}, True),
    ("data.score > 80 && meta.priority == 'high'", {"priority": "high"}, {"score": 80}, False),
    ("data.text CONTAINS 'ell'", None, {"text": "hello"}, True),
    ("data.tags CONTAINS 'a'", None, {"tags": ["b", "a"]}, True),
    ("data.text LIKE 'h*o'", None, {"text": "hello"}, True),
    # A payload that is not an object (a string, an encrypted payload) has no fields.
    ("data.text == 'hi'", None, "hi", False),
    ("data.text != 'hi'", None, "hi", True),
    ("data.text == 'hi'", None, None, False),
]


@pytest.mark.parametrize(("expression", "meta", "data", "expected"), DATA_CASES)
def test_data_paths_read_the_payload(
    expression: str, meta: object, data: object, expected: bool
) -> None:
    compiled = compile_filter(expression)
    assert compiled.uses_data
    assert compiled.matches(meta, data) is expected


def test_data_paths_do_not_resolve_without_a_payload() -> None:
    assert compile_filter("data.a == 1").matches({"a": 1}) is False
    assert not compile_filter("meta.a == 1").uses_data


ERROR_TABLE: list[tuple[str, int, str]] = [
    # (expression, 0-based position reported, fragment of the message)
    ("", 0, "empty expression"),
    ("   ", 0, "empty expression"),
    ("(meta.a == 1", 12, "expected ')'"),
    ("((meta.a == 1)", 14, "expected ')'"),
    ("meta.a == 1)", 11, "found ')'"),
    (")", 0, "expected a value"),
    ("()", 1, "expected a value"),
    ("meta.a == 'x", 10, "unterminated string"),
    ('meta.a == "x', 10, "unterminated string"),
    ("meta.a == 'x\\'", 10, "unterminated string"),
    ("meta.a == 'bad\\q'", 14, "invalid escape"),
    ("meta.a == '\\u12'", 11, "invalid escape"),
    ("meta.a ==", 9, "expected a value"),
    ("meta.a == 1 &&", 14, "expected a value"),
    ("|| meta.a == 1", 0, "expected a value"),
    ("meta.a == 1 ||", 14, "expected a value"),
    ("meta.a == 1 && && meta.b == 2", 15, "expected a value"),
    ("!", 1, "expected a value"),
    ("meta.a <", 8, "expected a value"),
    ("meta.a LIKE", 11, "expected a value"),
    ("uuid == 'x'", 0, "unknown name 'uuid'"),
    ("channel == 'x'", 0, "unknown name 'channel'"),
    ("meta.a == other.b", 10, "unknown name 'other'"),
    ("Meta.a == 1", 0, "unknown name 'Meta'"),
    ("meta == 1", 0, "'meta' alone"),
    ("data == 1", 0, "'data' alone"),
    ("Data.a == 1", 0, "unknown name 'Data'"),
    ("meta. == 1", 6, "key name after '.'"),
    ("meta.5 == 1", 5, "key name after '.'"),
    ("meta[1.5] == 1", 5, "inside [ ]"),
    ("meta[-1] == 1", 5, "inside [ ]"),
    ("meta[x] == 1", 5, "inside [ ]"),
    ("meta['a' == 1", 9, "expected ']'"),
    ("meta.a = 1", 7, "'=='"),
    ("meta.a == 1 & meta.b == 2", 12, "'&&'"),
    ("meta.a == 1 | meta.b == 2", 12, "'||'"),
    ("meta.a == 1 and meta.b == 2", 12, "write && or ||"),
    ("meta.a == @", 10, "unexpected character '@'"),
    ("meta.a == 12abc", 12, "after number"),
    ("meta.a == - 1", 10, "unexpected character '-'"),
    ("meta.a == 1 == 2", 12, "do not chain"),
    ("meta.a meta.b", 7, "expected '&&', '||'"),
    ("!meta.a == 'x'", 8, "write !(a == b)"),
    ("(meta.a == 1) == true", 14, "expected '&&', '||'"),
    ("'abc'", 0, "a literal alone"),
    ("42", 0, "a literal alone"),
    ("null", 0, "a literal alone"),
    ("meta.a == 1 && 'x'", 15, "a literal alone"),
    ("meta.a LIKE meta.b", 12, "LIKE needs a quoted pattern"),
    ("meta.a LIKE 5", 12, "LIKE needs a quoted pattern"),
    ("meta.a == LIKE", 10, "expected a value"),
    ("and", 0, "expected a value"),
]


@pytest.mark.parametrize(("expression", "position", "fragment"), ERROR_TABLE)
def test_malformed_expressions_raise(expression: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterExpressionError) as info:
        compile_filter(expression)
    error = info.value
    assert isinstance(error, ValueError)
    assert fragment in str(error)
    assert error.position == position
    assert error.expression == expression
    assert f"column {position + 1}" in str(error)


def test_too_long_expression_is_rejected_before_parsing() -> None:
    clause = "meta.a == 1 || "
    accepted = (clause * 200)[: MAX_EXPRESSION_LENGTH - len("meta.b == 2")]
    accepted = accepted[: accepted.rfind("||") + 3] + "meta.b == 2"
    assert len(accepted) <= MAX_EXPRESSION_LENGTH
    assert compile_filter(accepted).matches({"b": 2}) is True

    too_long = "meta.a == '" + "x" * MAX_EXPRESSION_LENGTH + "'"
    with pytest.raises(FilterExpressionError, match="limit is 2048"):
        compile_filter(too_long)


def test_non_string_expression_is_rejected() -> None:
    with pytest.raises(FilterExpressionError, match="must be a string"):
        compile_filter(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 1000 + "meta.a" + ")" * 1000,
        "!" * 2000 + "meta.a",
        "!(" * 600 + "meta.a" + ")" * 600,
    ],
)
def test_too_deep_nesting_raises_filter_error_not_recursion_error(expression: str) -> None:
    with pytest.raises(FilterExpressionError, match="nested deeper than"):
        compile_filter(expression)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    depth = MAX_NESTING_DEPTH
    assert compile_filter("(" * depth + "meta.a == 1" + ")" * depth).matches({"a": 1}) is True
    nots = "!" * depth + "meta.a"  # an even count cancels out
    assert compile_filter(nots).matches({"a": 1}) is (depth % 2 == 0)
    with pytest.raises(FilterExpressionError, match="nested deeper than"):
        compile_filter("(" * (depth + 1) + "meta.a == 1" + ")" * (depth + 1))


def test_long_flat_chains_evaluate_every_term() -> None:
    # || and && chains of any length are flat (not nested), so they are not bounded by nesting.
    any_of = "||".join(f"meta.k{i}=={i}" for i in range(120))
    all_of = "&&".join(f"meta.k{i}!={i}" for i in range(120))
    assert len(any_of) <= MAX_EXPRESSION_LENGTH
    assert compile_filter(any_of).matches({"k119": 119}) is True
    assert compile_filter(any_of).matches({"k119": 118}) is False
    assert compile_filter(all_of).matches({"k0": 1}) is True
    assert compile_filter(all_of).matches({"k119": 119}) is False
