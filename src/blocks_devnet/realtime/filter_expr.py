"""PubNub subscribe filter expressions (`filter-expr`), compiled to fast predicates.

A subscriber passes an expression such as ``meta.sender != 'me'`` or ``data.score > 80``; the
server evaluates it against each message's publish ``meta`` and its payload (``data``, the
published message itself) and delivers only the messages it matches. The grammar,
precedence and the semantic choices (missing fields, numeric coercion) are described in
``docs/filter-expressions.md``. This module does no I/O: it tokenizes, parses with recursive
descent and compiles the tree into nested closures, because evaluation runs once per message per
subscriber on the server's hot path.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING_DEPTH",
    "CompiledFilter",
    "FilterExpressionError",
    "compile_filter",
]

logger = logging.getLogger(__name__)

MAX_EXPRESSION_LENGTH = 2048
MAX_NESTING_DEPTH = 32

Meta = dict[Any, Any]
Predicate = Callable[[Meta], bool]
Getter = Callable[[Meta], object]


class _Missing:
    """Marks a path that does not resolve in the meta (distinct from a JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
_EMPTY_META: Meta = {}
#: Where a filter that reads ``data.*`` finds the payload: a key no JSON object can have, in a
#: copy of the meta, so meta-only filters (the hot case) evaluate the meta dict as it is.
_DATA_KEY: Any = object()


class FilterExpressionError(ValueError):
    """A filter expression that cannot be compiled; `position` is the 0-based offending offset."""

    def __init__(self, expression: str, position: int, reason: str) -> None:
        self.expression = expression
        self.position = position
        self.reason = reason
        super().__init__(
            f"invalid filter expression at column {position + 1}: {reason} "
            f"(expression: {expression[:80]!r}{'...' if len(expression) > 80 else ''})"
        )


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A compiled filter expression; immutable, hashable by its source, shareable across threads."""

    source: str
    _predicate: Predicate = field(repr=False, compare=False)
    #: Whether the expression reads the payload (``data.*``); callers may skip decoding it if not.
    uses_data: bool = field(default=False, compare=False)

    def matches(self, meta: object, data: object = _MISSING) -> bool:
        """Tell whether a message with this publish `meta` and payload `data` passes the filter.

        Never raises: a `meta` that is not a dict (absent, None, a list...) is evaluated as `{}`;
        `data` paths do not resolve when `data` is omitted or is not an object (an encrypted
        payload is a string, so ``data.*`` never matches it, as on the real service).
        """
        m = meta if isinstance(meta, dict) else _EMPTY_META
        if self.uses_data:
            m = dict(m)
            m[_DATA_KEY] = data
        try:
            return self._predicate(m)
        except Exception:  # a filter must never break delivery; a weird meta just doesn't match
            logger.debug("filter %r failed on meta %r; treating as no match", self.source, meta)
            return False


def compile_filter(expression: str) -> CompiledFilter:
    """Compile a PubNub filter expression; results are cached (the same expression recurs).

    Raises FilterExpressionError (a ValueError) for an empty, over-long, over-nested or malformed
    expression, or one that references anything but `meta` and `data`. Thread-safe.
    """
    if not isinstance(expression, str):
        raise FilterExpressionError(repr(expression), 0, "the filter expression must be a string")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise FilterExpressionError(
            expression,
            MAX_EXPRESSION_LENGTH,
            f"expression is {len(expression)} characters long; the limit is "
            f"{MAX_EXPRESSION_LENGTH}, so shorten it",
        )
    return _compile_cached(expression)


@functools.lru_cache(maxsize=1024)
def _compile_cached(expression: str) -> CompiledFilter:
    parser = _Parser(expression)
    predicate = parser.parse()
    logger.debug("compiled filter expression %r", expression)
    return CompiledFilter(expression, predicate, parser.uses_data)


# ---------------------------------------------------------------------------------------------
# Value semantics


_NUMBER_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)


def _as_number(value: object) -> int | float | None:
    """The numeric value of a number or of a string spelling one; None otherwise."""
    if type(value) is int or type(value) is float:
        return value
    if type(value) is str and _NUMBER_RE.fullmatch(value):
        try:
            return int(value) if "." not in value and "e" not in value.lower() else float(value)
        except ValueError:  # more digits than int() accepts: not usable as a number
            return None
    return None


def _equal(a: object, b: object) -> bool:
    """Equality with PubNub-style coercion; both sides are present values (not missing)."""
    if type(a) is str and type(b) is str:
        return a == b
    if type(a) is bool:
        return _equal_bool(a, b)
    if type(b) is bool:
        return _equal_bool(b, a)
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None:
        return na == nb
    return type(a) is type(b) and a == b


def _equal_bool(flag: bool, other: object) -> bool:
    if type(other) is bool:
        return flag is other
    # Meta is often stringly typed, so "true" equals true.
    return type(other) is str and other.lower() == ("true" if flag else "false")


def _order(a: object, b: object) -> int | None:
    """-1, 0 or 1 when a and b are ordered (numbers, numeric strings vs numbers, strings)."""
    if type(a) is str and type(b) is str:
        return (a > b) - (a < b)
    if type(a) is bool or type(b) is bool:
        return None
    na, nb = _as_number(a), _as_number(b)
    if na is None or nb is None or na != na or nb != nb:  # NaN orders with nothing
        return None
    return (na > nb) - (na < nb)


def _truthy(value: object) -> bool:
    if value is _MISSING or value is None:
        return False
    if type(value) is str:
        return value != "" and value.lower() != "false"
    return bool(value)


def _contains(haystack: object, needle: object) -> bool:
    if type(haystack) is str:
        return type(needle) is str and needle in haystack
    if type(haystack) is list:
        return needle is not _MISSING and any(_equal(item, needle) for item in haystack)
    return False


# ---------------------------------------------------------------------------------------------
# Tokenizer


class _Token(NamedTuple):
    kind: str  # "sym", "str", "num", "ident" or "end"
    value: Any
    pos: int


_SYMBOLS = ("&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".")
_NUMBER_TOKEN_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_MISTYPED = {"=": "'=='", "&": "'&&'", "|": "'||'"}


def _tokenize(src: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"":
            value, end = _read_string(src, i)
            tokens.append(_Token("str", value, i))
            i = end
            continue
        match = _NUMBER_TOKEN_RE.match(src, i)
        if match:
            end = match.end()
            if end < n and (src[end].isalnum() or src[end] == "_"):
                raise FilterExpressionError(src, end, f"unexpected {src[end]!r} after number")
            text = match.group()
            number = float(text) if match.group(1) or match.group(2) else int(text)
            tokens.append(_Token("num", number, i))
            i = end
            continue
        match = _IDENT_RE.match(src, i)
        if match:
            tokens.append(_Token("ident", match.group(), i))
            i = match.end()
            continue
        symbol = next((s for s in _SYMBOLS if src.startswith(s, i)), None)
        if symbol is None:
            hint = f"; did you mean {_MISTYPED[ch]}?" if ch in _MISTYPED else ""
            raise FilterExpressionError(src, i, f"unexpected character {ch!r}{hint}")
        tokens.append(_Token("sym", symbol, i))
        i += len(symbol)
    tokens.append(_Token("end", None, n))
    return tokens


def _read_string(src: str, start: int) -> tuple[str, int]:
    """Read the quoted string opening at `start`; return its value and the offset after it."""
    quote, i, out = src[start], start + 1, list[str]()
    while i < len(src):
        ch = src[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = src[i + 1 : i + 2]
        if esc in _ESCAPES and esc:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", src[i + 2 : i + 6]):
            out.append(chr(int(src[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise FilterExpressionError(
                src, i, "invalid escape in string; use \\\\, \\', \\\", \\n, \\t or \\uXXXX"
            )
    raise FilterExpressionError(src, start, f"unterminated string; add the closing {quote}")


# ---------------------------------------------------------------------------------------------
# Parser: recursive descent that returns compiled closures directly
#
#   or    := and ('||' and)*
#   and   := not ('&&' not)*
#   not   := '!' unary | atom            unary := '!' unary | '(' or ')' | value
#   atom  := '(' or ')' | value [op value]
#   value := path | STRING | NUMBER | true | false | null
#   path  := ('meta' | 'data') ('.' NAME | '[' STRING ']' | '[' INT ']')+
#   op    := '==' | '!=' | '<' | '<=' | '>' | '>=' | LIKE | CONTAINS


class _Operand(NamedTuple):
    get: Getter
    is_path: bool
    literal: object  # the constant for a literal; _MISSING for a path
    pos: int


_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_KEYWORD_OPS = ("LIKE", "CONTAINS")
_ORDER_RESULTS = {"<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (1, 0)}
_VALUE_HINT = "a value (meta.<key>, data.<key>, a quoted string, a number, true, false or null)"


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "the end of the expression"
    if tok.kind == "str":
        return f"string {tok.value!r}"
    return f"{tok.value!r}"


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = _tokenize(src)
        self.i = 0
        self.depth = 0
        self.uses_data = False

    def parse(self) -> Predicate:
        if self.tokens[0].kind == "end":
            raise self._error(0, "empty expression; omit filter-expr to receive every message")
        predicate = self._or()
        tok = self._peek()
        if tok.kind != "end":
            hint = ""
            if tok.kind == "sym" and tok.value in _COMPARISONS:
                hint = "; comparisons do not chain, join them with &&"
            elif tok.kind == "ident" and tok.value.lower() in ("and", "or"):
                hint = "; write && or ||"
            raise self._error(
                tok.pos,
                f"expected '&&', '||' or the end of the expression, found {_describe(tok)}{hint}",
            )
        return predicate

    # -- helpers

    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def _accept(self, symbol: str) -> bool:
        tok = self.tokens[self.i]
        if tok.kind == "sym" and tok.value == symbol:
            self.i += 1
            return True
        return False

    def _error(self, pos: int, reason: str) -> FilterExpressionError:
        return FilterExpressionError(self.src, pos, reason)

    def _enter(self, tok: _Token) -> None:
        # Bounded nesting keeps both parsing and evaluation far from Python's recursion limit.
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            raise self._error(
                tok.pos,
                f"nested deeper than {MAX_NESTING_DEPTH} levels of '(' or '!'; simplify it",
            )

    # -- grammar

    def _or(self) -> Predicate:
        terms = [self._and()]
        while self._accept("||"):
            terms.append(self._and())
        return _any_of(terms)

    def _and(self) -> Predicate:
        terms = [self._not()]
        while self._accept("&&"):
            terms.append(self._not())
        return _all_of(terms)

    def _not(self) -> Predicate:
        tok = self._peek()
        if not (tok.kind == "sym" and tok.value == "!"):
            return self._atom()
        self._next()
        self._enter(tok)
        inner = self._unary()
        self.depth -= 1
        return lambda m: not inner(m)

    def _unary(self) -> Predicate:
        tok = self._peek()
        if tok.kind == "sym" and tok.value == "!":
            return self._not()
        if tok.kind == "sym" and tok.value == "(":
            return self._group()
        operand = self._operand("after '!'")
        if self._peek_operator() is not None:
            # '!' binds tighter than comparisons, so `!meta.a == 'x'` would compare a boolean.
            raise self._error(
                self._peek().pos,
                "'!' applies only to the value before this operator; "
                "write !(a == b) to negate a comparison",
            )
        return self._bare(operand)

    def _group(self) -> Predicate:
        opening = self._next()
        self._enter(opening)
        predicate = self._or()
        if not self._accept(")"):
            tok = self._peek()
            found = _describe(tok)
            raise self._error(
                tok.pos,
                f"expected ')' to close the '(' at column {opening.pos + 1}, found {found}",
            )
        self.depth -= 1
        return predicate

    def _atom(self) -> Predicate:
        tok = self._peek()
        if tok.kind == "sym" and tok.value == "(":
            return self._group()
        left = self._operand("")
        op = self._peek_operator()
        if op is None:
            return self._bare(left)
        self._next()
        right = self._operand(f"after {op}")
        if op == "LIKE" and not (not right.is_path and type(right.literal) is str):
            raise self._error(right.pos, "LIKE needs a quoted pattern such as 'abc*'")
        return _compile_comparison(op, left, right)

    def _peek_operator(self) -> str | None:
        tok = self._peek()
        if tok.kind == "sym" and tok.value in _COMPARISONS:
            return str(tok.value)
        if tok.kind == "ident" and tok.value.upper() in _KEYWORD_OPS:
            return str(tok.value.upper())
        return None

    def _bare(self, operand: _Operand) -> Predicate:
        if operand.is_path:
            get = operand.get
            return lambda m: _truthy(get(m))
        if type(operand.literal) is bool:
            constant: bool = operand.literal
            return lambda m: constant
        raise self._error(
            operand.pos, "a literal alone is not a condition; compare it, e.g. meta.kind == 'text'"
        )

    def _operand(self, context: str) -> _Operand:
        tok = self._next()
        where = f" {context}" if context else ""
        if tok.kind in ("str", "num"):
            return _literal(tok.value, tok.pos)
        if tok.kind != "ident":
            raise self._error(tok.pos, f"expected {_VALUE_HINT}{where}, found {_describe(tok)}")
        name: str = tok.value
        lowered = name.lower()
        if lowered in ("true", "false"):
            return _literal(lowered == "true", tok.pos)
        if lowered == "null":
            return _literal(None, tok.pos)
        if name in ("meta", "data"):
            return self._path(tok)
        if lowered in ("and", "or", "not") or name.upper() in _KEYWORD_OPS:
            raise self._error(tok.pos, f"expected {_VALUE_HINT}{where}, found {name!r}")
        raise self._error(
            tok.pos,
            f"unknown name {name!r}; a filter can only reference the publish meta "
            '(meta.<key> or meta["key"]) and the message payload (data.<key> or data["key"])',
        )

    def _path(self, root: _Token) -> _Operand:
        steps: list[str | int] = []
        while True:
            if self._accept("."):
                tok = self._next()
                if tok.kind != "ident":
                    raise self._error(
                        tok.pos, f"expected a key name after '.', found {_describe(tok)}"
                    )
                steps.append(tok.value)
            elif self._accept("["):
                tok = self._next()
                if tok.kind == "str" or (
                    tok.kind == "num" and type(tok.value) is int and tok.value >= 0
                ):
                    steps.append(tok.value)
                else:
                    raise self._error(
                        tok.pos,
                        "expected a quoted key or a non-negative list index inside [ ], "
                        f"found {_describe(tok)}",
                    )
                if not self._accept("]"):
                    tok = self._peek()
                    raise self._error(tok.pos, f"expected ']', found {_describe(tok)}")
            else:
                break
        if not steps:
            raise self._error(
                root.pos,
                f"'{root.value}' alone is not a value; name a key, "
                f'e.g. {root.value}.sender or {root.value}["key"]',
            )
        if root.value == "data":
            self.uses_data = True
            return _Operand(_data_getter(tuple(steps)), True, _MISSING, root.pos)
        return _Operand(_path_getter(tuple(steps)), True, _MISSING, root.pos)


# ---------------------------------------------------------------------------------------------
# Compilation to closures


def _literal(value: object, pos: int) -> _Operand:
    return _Operand(lambda m: value, False, value, pos)


def _path_getter(steps: tuple[str | int, ...]) -> Getter:
    if len(steps) == 1 and type(steps[0]) is str:
        key = steps[0]
        return lambda m: m.get(key, _MISSING)

    def get(m: Meta) -> object:
        value: Any = m
        for step in steps:
            if isinstance(step, str):
                if not isinstance(value, dict):
                    return _MISSING
                value = value.get(step, _MISSING)
                if value is _MISSING:
                    return _MISSING
            else:
                if not isinstance(value, list) or step >= len(value):
                    return _MISSING
                value = value[step]
        return value

    return get


def _data_getter(steps: tuple[str | int, ...]) -> Getter:
    walk = _path_getter(steps)

    def get(m: Meta) -> object:
        data = m.get(_DATA_KEY, _MISSING)
        return walk(data) if isinstance(data, dict) else _MISSING

    return get


def _compile_comparison(op: str, left: _Operand, right: _Operand) -> Predicate:
    if op in ("==", "!="):
        if not left.is_path and right.is_path:  # equality is symmetric: keep the path on the left
            left, right = right, left
        return _compile_equality(op == "==", left, right)
    lget, rget = left.get, right.get
    if op in _ORDER_RESULTS:
        accepted = _ORDER_RESULTS[op]
        return lambda m: _order(lget(m), rget(m)) in accepted
    if op == "LIKE":
        assert isinstance(right.literal, str)  # checked by the parser
        parts = (re.escape(part) for part in right.literal.split("*"))
        pattern = re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)
        return lambda m: _like(lget(m), pattern)
    return lambda m: _contains(lget(m), rget(m))


def _like(value: object, pattern: re.Pattern[str]) -> bool:
    return type(value) is str and pattern.fullmatch(value) is not None


def _compile_equality(positive: bool, left: _Operand, right: _Operand) -> Predicate:
    """`==` is false when either side is missing; `!=` is always its exact negation."""
    get = left.get
    if left.is_path and not right.is_path:
        lit = right.literal
        if type(lit) is str:  # the hot case: meta.key == 'text'; skip coercion for str values

            def eq_str(m: Meta) -> bool:
                v = get(m)
                return v == lit if type(v) is str else (v is not _MISSING and _equal(v, lit))

            def ne_str(m: Meta) -> bool:
                v = get(m)
                return v != lit if type(v) is str else (v is _MISSING or not _equal(v, lit))

            return eq_str if positive else ne_str

        def eq_lit(m: Meta) -> bool:
            v = get(m)
            return v is not _MISSING and _equal(v, lit)

        return eq_lit if positive else (lambda m: not eq_lit(m))

    rget = right.get

    def eq(m: Meta) -> bool:
        a, b = get(m), rget(m)
        return a is not _MISSING and b is not _MISSING and _equal(a, b)

    return eq if positive else (lambda m: not eq(m))


def _all_of(terms: list[Predicate]) -> Predicate:
    if len(terms) == 1:
        return terms[0]
    if len(terms) == 2:
        a, b = terms
        return lambda m: a(m) and b(m)

    return lambda m: all(term(m) for term in terms)


def _any_of(terms: list[Predicate]) -> Predicate:
    if len(terms) == 1:
        return terms[0]
    if len(terms) == 2:
        a, b = terms
        return lambda m: a(m) or b(m)

    return lambda m: any(term(m) for term in terms)
