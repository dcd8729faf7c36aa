"""The malformed-input vocabulary and the seeded :class:`Mutator` that applies it.

A :class:`Template` is one valid request to one route; :class:`Mutator` turns it into a
malformed variant, deterministically for a given ``random.Random``.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tests.devnet.fuzz.raw_http import RawRequest

# --- the vocabulary of malformed input ---------------------------------------------------

#: Path segments that break decoders, routers and validators.
SEGMENT_GARBAGE: tuple[bytes, ...] = (
    b"",
    b"%00",
    b"a%00b",
    b"%2F",
    b"%2f..%2f..%2fetc%2fpasswd",
    b"..",
    b".",
    b"%2e%2e",
    b"%",
    b"%zz",
    b"%f",
    b"%ff%fe",
    b"\xff\xfe",
    b"\xc3\x28",
    b"%C0%AF",
    b"%ED%A0%80",
    b"%F0%9F%98%80",
    b"caf\xc3\xa9",
    b"%20",
    b"%0d%0aX-Injected:%201",
    b",",
    b",,a,,",
    b"-pnpres",
    b"*",
    b"%2A",
    b"0",
    b"-1",
    b"9" * 40,
    b"a" * 3000,
    b"%41" * 3000,
    b"%22%5C%22",
)


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


#: Paging cursors shaped like the ones the server hands out, holding the wrong things.
_CURSORS: tuple[str, ...] = (
    _b64([10**30, "a"]),
    _b64([-(10**30), "a"]),
    _b64([1, "\ud800"]),
    _b64([1, 2]),
    _b64([True, "a"]),
    _b64("[" * 2000),
    _b64({"a": 1}),
    "WzEsImEiXQ===",
    "!!!",
)

#: Values that break number, boolean, JSON and token parsers (sent as-is in the query).
VALUE_GARBAGE: tuple[bytes, ...] = (
    b"",
    b"-1",
    b"0",
    b"-0",
    b"1",
    b"NaN",
    b"nan",
    b"inf",
    b"-inf",
    b"Infinity",
    b"1e309",
    b"1.5",
    b"0x1F",
    b"1_000",
    b"%207",
    b"%D9%A3",
    b"99999999999999999999999",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"%00",
    b"%ff",
    b"\xff",
    b"%ED%A0%80",
    b"[]",
    b"{}",
    b"%7B%22a%22%3A",
    b"%5B" * 5000,
    b"null",
    b"true",
    b"%22%5Cud800%22",
    b"%7B%22a%22%3ANaN%7D",
    b"x" * 40_000,
    b"a,b,,c",
    b"=",
    b"%3D%3D",
    *(cursor.encode() for cursor in _CURSORS),
)

#: Query keys every route family reads, so garbage reaches its parsers.
QUERY_KEYS: tuple[bytes, ...] = (
    b"tt",
    b"tr",
    b"uuid",
    b"auth",
    b"signature",
    b"timestamp",
    b"heartbeat",
    b"state",
    b"filter-expr",
    b"meta",
    b"store",
    b"ttl",
    b"norep",
    b"custom_message_type",
    b"seqn",
    b"count",
    b"start",
    b"end",
    b"max",
    b"reverse",
    b"include_token",
    b"include_meta",
    b"include_uuid",
    b"include_message_type",
    b"include_custom_message_type",
    b"limit",
    b"offset",
    b"next",
    b"exp",
    b"sig",
    b"timetoken",
    b"channelsTimetoken",
    b"channel-group",
    b"disable_uuids",
    b"agentName",
    b"include",
    b"tag",
    b"skill",
    b"listing",
    b"cursor",
)

#: JSON values of every type and edge, put in place of valid fields.
JSON_GARBAGE: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**63) - 1,
    10**30,
    10**400,
    *_CURSORS,
    1.5,
    -1e308,
    "",
    " ",
    "x" * 5000,
    "\ud800",
    "\x00",
    "../../etc/passwd",
    "a/b",
    "a\\b",
    "%00",
    "*",
    [],
    {},
    [1, "a", None],
    {"a": {"b": []}},
    [[[[[[[[[[]]]]]]]]]],
)

#: Whole bodies no valid request has.
BODY_GARBAGE: tuple[bytes, ...] = (
    b"",
    b"null",
    b"[]",
    b"123",
    b'"text"',
    b"{",
    b'{"a":',
    b"{'a': 1}",
    b"\xff\xfe\x00",
    b'{"a":"\xff"}',
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": -Infinity}',
    b'{"a":"\\ud800"}',
    b'{"a":1,"a":2}',
    b"[" * 100_000,
    b'{"a":' * 50_000,
    b"[" * 5_000 + b"]" * 5_000,
    b"1" * 5000,
    b'{"a":' + b"9" * 4000 + b"}",
    b"\x00" * 64,
    b"--x\r\nContent-Disposition: form-data\r\n\r\n",
)

#: Content-Type headers the routes do not expect.
CONTENT_TYPES: tuple[bytes, ...] = (
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data",
    b"multipart/form-data; boundary=",
    b"multipart/form-data; boundary=x",
    b"application/json; charset=latin-1",
    b"application/json; charset=bogus",
    b"\xff\xfe",
    b";;;",
)

METHODS: tuple[bytes, ...] = (
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"PATCH",
    b"OPTIONS",
    b"HEAD",
    b"FOO",
    b"get",
)

#: ``Host`` headers that are not a plain ``host[:port]``.
HOST_GARBAGE: tuple[bytes, ...] = (
    b"",
    b"evil.example/../x",
    b"[::1",
    b"a" * 300,
    b"127.0.0.1:99999",
    b"host name",
    b"\xff",
    b"127.0.0.1:1@evil",
)

#: A large but well-formed JSON body (2 MiB string).
HUGE_JSON_BODY = b'{"a":"' + b"a" * (2 * 1024 * 1024) + b'"}'


@dataclass(frozen=True)
class Template:
    """One valid request to one route: ``route`` is ``(METHOD, canonical path)`` as the
    router lists it; ``json_body`` (if any) is mutated field by field."""

    route: tuple[str, str]
    request: RawRequest
    json_body: Any = None
    #: Turns a mutated request into one that passes the signature check (or leaves it).
    sign: Callable[[RawRequest], RawRequest] | None = None
    #: Extra bearer/auth values worth trying on this route (forged, expired, revoked...).
    credentials: tuple[bytes, ...] = field(default=())
    #: Statuses the unmutated request gets (the fuzzer checks its templates are valid).
    expect: tuple[int, ...] = (200,)
    #: For JSON-RPC templates: the unmutated call must return a ``result``.
    rpc_result: bool = False


class Mutator:
    """Malformed variants of templates, from one seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def mutate(self, template: Template) -> RawRequest:
        """Apply one to three random mutations to the template's request."""
        request = template.request
        if template.json_body is not None:
            choice = self.rng.random()
            if choice < 0.6:
                request = replace(request, body=self._json_body(template.json_body))
            if choice < 0.4:
                # A well-formed request with one bad field reaches the deepest validation.
                return request
        for _ in range(self.rng.randint(1, 3)):
            operation = self.rng.choice(self._operations)
            request = operation(self, request, template)
        if template.sign is not None and self.rng.random() < 0.4:
            request = template.sign(request)
        return request

    # --- operations --------------------------------------------------------------------

    def _method(self, request: RawRequest, _t: Template) -> RawRequest:
        return replace(request, method=self.rng.choice(METHODS))

    def _truncate_path(self, request: RawRequest, _t: Template) -> RawRequest:
        keep = self.rng.randint(0, len(request.segments))
        extra = (self.rng.choice(SEGMENT_GARBAGE),) if self.rng.random() < 0.3 else ()
        return replace(request, segments=request.segments[:keep] + extra)

    def _replace_segment(self, request: RawRequest, _t: Template) -> RawRequest:
        segments = list(request.segments) or [b""]
        index = self.rng.randrange(len(segments))
        segments[index] = self.rng.choice(SEGMENT_GARBAGE)
        return replace(request, segments=tuple(segments))

    def _extend_path(self, request: RawRequest, _t: Template) -> RawRequest:
        extra = tuple(self.rng.choice(SEGMENT_GARBAGE) for _ in range(self.rng.randint(1, 3)))
        return replace(request, segments=request.segments + extra)

    def _query_value(self, request: RawRequest, _t: Template) -> RawRequest:
        query = list(request.query)
        key = self.rng.choice(QUERY_KEYS)
        value = self.rng.choice(VALUE_GARBAGE)
        if query and self.rng.random() < 0.5:
            index = self.rng.randrange(len(query))
            if query[index][0] in (b"cursor", b"next"):
                value = self.rng.choice(_CURSORS).encode()
            query[index] = (query[index][0], value)
        else:
            query.append((key, value))
        return replace(request, query=tuple(query))

    def _query_duplicate(self, request: RawRequest, _t: Template) -> RawRequest:
        if not request.query:
            return replace(request, query=((b"uuid", b"a"), (b"uuid", b"b")))
        key, _ = self.rng.choice(request.query)
        return replace(request, query=(*request.query, (key, self.rng.choice(VALUE_GARBAGE))))

    def _query_shape(self, request: RawRequest, _t: Template) -> RawRequest:
        odd: tuple[tuple[bytes, bytes | None], ...] = self.rng.choice(
            (
                ((b"", b""),),
                ((b"", b"x"),),
                ((b"novalue", None),),
                ((b"%ff", b"1"),),
                ((b"a", b"b=c=d"),),
                ((b"&&&", None),),
            )
        )
        kept = request.query if self.rng.random() < 0.5 else ()
        return replace(request, query=kept + odd)

    def _body(self, request: RawRequest, _t: Template) -> RawRequest:
        if self.rng.random() < 0.05:
            return replace(request, body=HUGE_JSON_BODY)
        return replace(request, body=self.rng.choice(BODY_GARBAGE))

    def _truncate_body(self, request: RawRequest, _t: Template) -> RawRequest:
        if not request.body:
            return self._body(request, _t)
        return replace(request, body=request.body[: self.rng.randrange(len(request.body))])

    def _content_type(self, request: RawRequest, _t: Template) -> RawRequest:
        return request.with_header(b"Content-Type", self.rng.choice(CONTENT_TYPES))

    def _content_encoding(self, request: RawRequest, _t: Template) -> RawRequest:
        encoding = self.rng.choice((b"gzip", b"deflate", b"br", b"identity", b"x"))
        return request.with_header(b"Content-Encoding", encoding)

    def _credential(self, request: RawRequest, template: Template) -> RawRequest:
        pool = template.credentials or (b"garbage",)
        credential = self.rng.choice(pool)
        if self.rng.random() < 0.5:
            scheme = self.rng.choice((b"Bearer ", b"bearer ", b"Basic ", b"Bearer  ", b""))
            return request.with_header(b"Authorization", scheme + credential)
        query = tuple((k, v) for k, v in request.query if k != b"auth")
        return replace(request, query=(*query, (b"auth", credential)))

    def _protocol_version(self, request: RawRequest, _t: Template) -> RawRequest:
        value = self.rng.choice((b"", b"0", b"99.0", b"\xff", b"1.0, 1.0", b"x" * 500))
        return request.with_header(b"Blocks-Protocol-Version", value)

    def _host(self, request: RawRequest, _t: Template) -> RawRequest:
        return request.with_header(b"Host", self.rng.choice(HOST_GARBAGE))

    _operations: tuple[Callable[[Mutator, RawRequest, Template], RawRequest], ...] = (
        _method,
        _truncate_path,
        _replace_segment,
        _replace_segment,
        _extend_path,
        _query_value,
        _query_value,
        _query_value,
        _query_duplicate,
        _query_shape,
        _body,
        _truncate_body,
        _content_type,
        _content_encoding,
        _credential,
        _credential,
        _protocol_version,
        _host,
    )

    # --- JSON bodies -------------------------------------------------------------------

    def _json_body(self, valid: Any) -> bytes:
        """``valid`` with one field given a wrong type, removed, or a field added."""
        body = json.loads(json.dumps(valid))
        paths = list(_paths(body))
        choice = self.rng.random()
        if not paths or choice < 0.1:
            body = self.rng.choice(JSON_GARBAGE)
        else:
            container, key = self.rng.choice(paths)
            if isinstance(key, str) and key.lower().endswith(("cursor", "next")):
                container[key] = self.rng.choice(_CURSORS)
            elif choice < 0.75:
                container[key] = self.rng.choice(JSON_GARBAGE)
            elif choice < 0.9 and isinstance(container, dict):
                del container[key]
            elif isinstance(container, dict):
                container[f"unknown{self.rng.randrange(100)}"] = self.rng.choice(JSON_GARBAGE)
            else:
                container.append(self.rng.choice(JSON_GARBAGE))
        return json.dumps(body).encode()


def _paths(value: Any) -> list[tuple[Any, Any]]:
    """Every ``(container, key)`` inside a JSON value, depth first."""
    found: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key))
            found += _paths(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            found += _paths(item)
    return found
