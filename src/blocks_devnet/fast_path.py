"""A lean HTTP/1.1 front for the hottest routes (publish, RPC, polls); aiohttp serves the rest.

Every task event and stream frame is one ``POST /publish``, every task one ``POST
/api/v1/rpc``, and aiohttp's per-request machinery (request and response objects, routing,
middlewares, a task per request) costs about as much CPU as a publish itself. This protocol
sits on the listening socket in front of aiohttp: it reads each request head itself and
answers a plain ``POST`` to one of the :class:`FastRoute` paths, with a ``Content-Length``
body, by calling the very same route function, wrapped in the application's own
middlewares (so errors are answered exactly as aiohttp would), with a minimal request
object. Route functions must finish without waiting on anything but ``request.read()``.
The first request it does not serve (another route or method, a chunked or oversized body,
``Expect``, ``Upgrade``, HTTP/1.0, anything odd) hands the connection, with every byte
received so far, to aiohttp's own protocol for good. So the fast path never has to be right
about anything but plain requests to its routes; aiohttp stays the reference for the rest.
Because a hand-over is for good, the routes include the JSON requests clients make as they
start (config, tokens, registry, time): a pooled connection whose first request was one of
those would otherwise serve every later publish or RPC through aiohttp. Each connection
tells the server's :class:`~blocks_devnet.connection_guard.ConnectionGuard` what it waits
for (a head, a body, nothing: idle, or an answer), so stalled clients are closed.

An answer computed while the database has uncommitted writes is held until they are
committed (the application's :data:`~blocks_devnet.commit_gate.COMMIT_GATE`). Requests a
client pipelines behind it are served at once all the same, in the same loop turn, so they
share its commit; their answers queue behind it and go out in request order as their
commits complete. A rolled-back batch closes the connection, and no later answer is
written. Nothing is served behind a held long-poll (its answer may come much later).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from multidict import MultiDictProxy
from yarl import URL

from blocks_devnet.commit_gate import COMMIT_GATE, CommitGate
from blocks_devnet.connection_guard import (
    ConnectionGuard,
    ConnectionTimeouts,
    GuardedConnection,
    Phase,
)

__all__ = ["FastConnections", "FastProtocol", "FastRoute"]

logger = logging.getLogger(__name__)

#: Longest request head read here (a longer one goes to aiohttp, which refuses or serves it):
#: above the SDK's shared subscribe polls (30,000 bytes of URL, transport/poll_groups.py),
#: which aiohttp served ~3x slower at 10,000 open sessions (bench/RESULTS.md).
_MAX_HEAD_BYTES: Final = 64 * 1024
#: Request lines the fast path may serve start with one of these.
_METHOD_PREFIXES: Final = (b"POST ", b"GET ")
#: Request headers whose presence means "let aiohttp deal with it".
_DEFERRED_HEADERS: Final = frozenset({"transfer-encoding", "expect", "upgrade"})
#: Bytes read ahead behind a held long-poll before reading pauses (as aiohttp does).
_MAX_READ_AHEAD: Final = 1024 * 1024
#: Answers queued on one connection (for their commits) before it stops serving more.
_MAX_QUEUED_ANSWERS: Final = 64
#: How often a closing connection looks whether its held answer went out.
_HELD_POLL_SECONDS: Final = 0.01
#: A header name is an RFC 9110 token; anything else is aiohttp's to refuse.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Control characters aiohttp refuses in a header (tab is allowed; CR and LF are checked
#: separately, as line ends).
_HEADER_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Headers(dict[str, str]):
    """Request headers by lower-case name; ``get`` ignores case, as aiohttp's does."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


Route = Callable[[Any], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class FastRoute:
    """``method path`` (``prefix``: any longer path starting with it) served by ``handler``;
    bodies over ``max_body`` bytes (any body, for a GET) go to aiohttp."""

    path: str
    handler: Route
    max_body: int = 0
    prefix: bool = False
    method: str = "POST"
    #: The handler may wait (a long-poll): it runs as a task, cancelled if the client leaves,
    #: and the connection's next request is read once it answered.
    waits: bool = False

    def matches(self, method: str, path: str) -> bool:
        if method != self.method:
            return False
        if self.prefix:
            return len(path) > len(self.path) and path.startswith(self.path)
        return path == self.path


class _PlainRequest:
    """What the fast routes read from an aiohttp request, and nothing more."""

    __slots__ = ("_body", "_query", "app", "content_length", "headers", "method", "raw_path")

    def __init__(
        self, app: web.Application, method: str, raw_path: str, headers: _Headers, body: bytes
    ):
        self.app = app
        self.method = method
        self.raw_path = raw_path
        self.headers = headers
        self.content_length = len(body)
        self._body = body
        self._query: MultiDictProxy[str] | None = None

    @property
    def path(self) -> str:
        return self.raw_path.partition("?")[0]

    @property
    def host(self) -> str:
        """The Host header (every request served here has one)."""
        return str(self.headers["host"])

    @property
    def query(self) -> MultiDictProxy[str]:
        """The decoded query, parsed by the same library (yarl) as aiohttp's."""
        if self._query is None:
            self._query = URL(self.raw_path, encoded=True).query
        return self._query

    async def read(self) -> bytes:
        return self._body


class _Queued:
    """An answer waiting to be written: for its commit, or for the answers before it."""

    __slots__ = ("answer", "keep_alive", "ready")

    def __init__(self, answer: web.Response, keep_alive: bool) -> None:
        self.answer = answer
        self.keep_alive = keep_alive
        self.ready = False


class FastConnections:
    """Builds :class:`FastProtocol` for a server and closes its connections at stop."""

    def __init__(
        self,
        app: web.Application,
        fallback: Callable[[], asyncio.Protocol],
        routes: Sequence[FastRoute],
        guard: ConnectionGuard | None = None,
    ) -> None:
        self._app = app
        self._fallback = fallback
        # Without one (unit tests), connections are watched by a guard that never sweeps.
        self._guard = ConnectionGuard(ConnectionTimeouts()) if guard is None else guard
        self._open: set[FastProtocol] = set()
        self._gate = app.get(COMMIT_GATE)
        # Each route inside the app's middlewares, composed as aiohttp composes them.
        self._routes: list[tuple[FastRoute, Route]] = []
        for route in routes:
            handler = route.handler
            for middleware in reversed(app.middlewares):
                handler = functools.partial(middleware, handler=handler)
            self._routes.append((route, handler))

    def __call__(self) -> FastProtocol:
        return FastProtocol(
            self._app, self._routes, self._fallback, self._open, self._guard, self._gate
        )

    async def shutdown(self, timeout: float) -> None:
        """Let held long-polls answer (up to ``timeout``), then close the connections still
        served here (aiohttp closes the ones it took)."""
        protocols = list(self._open)
        if protocols:
            await asyncio.gather(*(protocol.finish(timeout) for protocol in protocols))


class FastProtocol(asyncio.Protocol):
    """One client connection: fast routes answered here until the first other request."""

    def __init__(
        self,
        app: web.Application,
        routes: list[tuple[FastRoute, Route]],
        fallback: Callable[[], asyncio.Protocol],
        registry: set[FastProtocol],
        guard: ConnectionGuard,
        gate: CommitGate | None = None,
    ) -> None:
        self._app = app
        self._gate = gate
        # Answers not written yet, in request order: the first waits for its commit.
        self._answers: deque[_Queued] = deque()
        # A Connection: close request was served: nothing after it is read.
        self._last_served = False
        self._routes = routes
        self._fallback = fallback
        self._registry = registry
        self._guard = guard
        self._watched: GuardedConnection | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting: asyncio.Task[None] | None = None
        self._waiting_keep_alive = True
        # Why reading is paused, if it is: the client does not read our answers
        # (writing paused), or it sends too much ahead of a held long-poll.
        self._writing_paused = False
        self._read_ahead_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._registry.add(self)
        self._watched = self._guard.watch(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
        self._forget()
        self._transport = None
        if self._waiting is not None:
            self._waiting.cancel()  # as aiohttp's handler_cancellation does

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # A client that sends requests without reading the answers must not fill our memory:
    # stop reading while the transport's write buffer is over its high-water mark.
    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()
        if self._watched is not None:
            self._watched.writing_paused(True)

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()
        if self._watched is not None:
            self._watched.writing_paused(False)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._writing_paused or self._read_ahead_paused:
            if transport.is_reading():
                transport.pause_reading()
        elif not transport.is_reading():
            transport.resume_reading()

    async def finish(self, timeout: float) -> None:
        """Let a held long-poll (released by the server's shutdown) answer, then close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiting = self._waiting
        if waiting is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(waiting), timeout)
            await asyncio.sleep(0)  # let the task finish writing its answer
        while self._answers and loop.time() < deadline:
            await asyncio.sleep(_HELD_POLL_SECONDS)  # the next commit releases it
        self.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        watched = self._watched
        if watched is None:
            return  # handed over or closed
        watched.received += len(data)
        phase = self._serve_buffered()
        if phase is None:
            return  # handed over
        if self._busy and len(self._buffer) > _MAX_READ_AHEAD:
            self._read_ahead_paused = True
            self._update_reading()
        # An answer still to come makes the connection busy, whatever else it waits for.
        watched.enter(Phase.BUSY if self._busy else phase)

    def _serve_buffered(self) -> Phase | None:
        """Serve every whole request buffered (None: the connection was handed over); the
        phase the connection is in unless an answer is pending."""
        while self._transport is not None and self._buffer:
            if self._waiting is not None or self._last_served:
                return Phase.BUSY  # read ahead behind a held long-poll, or ignored
            if len(self._answers) >= _MAX_QUEUED_ANSWERS:
                return Phase.BUSY  # served once the queued answers went out
            start = bytes(self._buffer[:5])
            if not any(method.startswith(start[: len(method)]) for method in _METHOD_PREFIXES):
                return self._hand_over_when_answered()
            end = self._buffer.find(b"\r\n\r\n", 0, _MAX_HEAD_BYTES)
            if end < 0:
                if len(self._buffer) >= _MAX_HEAD_BYTES:
                    return self._hand_over_when_answered()
                return Phase.HEAD  # the head is not complete yet
            parsed = _parse_head(bytes(self._buffer[:end]))
            found = None if parsed is None else self._route_for(*parsed[:2], parsed[3])
            if parsed is None or found is None:
                return self._hand_over_when_answered()
            method, raw_path, headers, length, keep_alive = parsed
            total = end + 4 + length
            if len(self._buffer) < total:
                return Phase.BODY
            body = bytes(self._buffer[end + 4 : total])
            route, handler = found
            if route.waits:
                del self._buffer[:total]
                self._start_waiting(handler, method, raw_path, headers, body, keep_alive)
                return Phase.BUSY  # a held poll is not idle
            answer = self._serve(handler, method, raw_path, headers, body)
            if answer is None:
                return self._hand_over_when_answered()
            del self._buffer[:total]
            self._last_served = not keep_alive
            self._queue(answer, keep_alive)
        return Phase.IDLE

    def _hand_over_when_answered(self) -> Phase | None:
        """Hand the connection to aiohttp now, or once the answers queued are written (they
        come first); None when handed over."""
        if self._answers:
            return Phase.BUSY
        self._hand_over()
        return None

    @property
    def _busy(self) -> bool:
        """Whether an answer is still to come (a held long-poll or a commit)."""
        return self._waiting is not None or bool(self._answers)

    def _queue(self, answer: web.Response, keep_alive: bool) -> None:
        """Write ``answer`` now, or once its commit and the answers before it are done."""
        queued = _Queued(answer, keep_alive)
        held = self._gate is not None and self._gate(functools.partial(self._committed, queued))
        if not held and not self._answers:
            self._write(queued)
            return
        queued.ready = not held
        self._answers.append(queued)

    def _committed(self, queued: _Queued, error: BaseException | None) -> None:
        """The commit callback of a held answer: write what is ready, in order."""
        transport = self._transport
        if transport is None:
            self._answers.clear()
            return
        if error is not None:
            # The writes it tells of were rolled back: accept nothing, the client retries.
            self._answers.clear()
            transport.close()
            return
        queued.ready = True
        answers = self._answers
        while answers and answers[0].ready:
            if not self._write(answers.popleft()):
                answers.clear()
                return
        if not answers:
            self._answered()

    def _write(self, queued: _Queued) -> bool:
        """Write one answer; False when it closed the connection."""
        transport = self._transport
        assert transport is not None
        transport.write(_serialize(queued.answer, queued.keep_alive))
        if not queued.keep_alive:
            transport.close()
            return False
        return True

    def _answered(self) -> None:
        """Every answer is out: read on, serving what arrived meanwhile."""
        if self._read_ahead_paused:
            self._read_ahead_paused = False
            self._update_reading()
        if self._waiting is not None:
            return
        if self._buffer:
            # Served outside the commit callback that released us.
            asyncio.get_running_loop().call_soon(self.data_received, b"")
        elif self._watched is not None:
            self._watched.enter(Phase.IDLE)

    def _route_for(self, method: str, raw_path: str, length: int) -> tuple[FastRoute, Route] | None:
        path = raw_path.partition("?")[0]
        for route, handler in self._routes:
            if route.matches(method, path):
                return (route, handler) if length <= route.max_body else None
        return None

    def _start_waiting(
        self,
        handler: Route,
        method: str,
        raw_path: str,
        headers: _Headers,
        body: bytes,
        keep_alive: bool,
    ) -> None:
        request = _PlainRequest(self._app, method, raw_path, headers, body)
        self._waiting_keep_alive = keep_alive
        self._waiting = asyncio.ensure_future(self._hold(handler(request)))

    async def _hold(self, answering: Awaitable[web.StreamResponse]) -> None:
        # The answer is written from this task: a done callback would cost one more loop
        # turn before the subscriber hears of the message that woke the poll.
        try:
            answer = await answering
        except asyncio.CancelledError:
            # The client left (connection_lost cancels us), or the handler was cancelled
            # under us: either way no answer will come, so the connection must not wait.
            self._waiting = None
            self.close()
            raise
        except Exception:
            logger.exception("unexpected error answering a long-poll")
            answer = web.Response(status=500, text="500 Internal Server Error")
        self._answer_waited(answer)

    def _answer_waited(self, answer: web.StreamResponse) -> None:
        self._waiting = None
        if not isinstance(answer, web.Response):
            if self._transport is not None:
                self._transport.close()  # nothing here can stream a response
            return
        if self._transport is None:
            return
        self._queue(answer, self._waiting_keep_alive)
        if not self._answers and self._transport is not None and not self._transport.is_closing():
            self._answered()

    def _serve(
        self, handler: Route, method: str, raw_path: str, headers: _Headers, body: bytes
    ) -> web.Response | None:
        """The route's answer, or None when it did not finish at once (aiohttp takes over)."""
        request = _PlainRequest(self._app, method, raw_path, headers, body)
        try:
            answer = _run_now(handler(request))
        except _NotImmediate:
            return None
        except Exception:
            # What aiohttp does when a handler escapes every middleware: a bare 500.
            logger.exception("unexpected error answering %s %s", method, request.path)
            return web.Response(status=500, text="500 Internal Server Error")
        return answer if isinstance(answer, web.Response) else None

    def _hand_over(self) -> None:
        """Give the connection, and every byte not answered yet, to aiohttp for good."""
        transport, self._transport = self._transport, None
        self._registry.discard(self)
        self._forget()  # aiohttp's protocol watches it from here on
        if transport is None or transport.is_closing():
            return
        if not transport.is_reading():
            transport.resume_reading()  # aiohttp manages reading from here on
        protocol = self._fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._writing_paused:
            # The transport will call resume_writing() on aiohttp's protocol: tell it first.
            protocol.pause_writing()
        pending, self._buffer = bytes(self._buffer), bytearray()
        if pending:
            protocol.data_received(pending)

    def _forget(self) -> None:
        if self._watched is not None:
            self._watched.forget()
            self._watched = None


class _NotImmediate(Exception):
    """The route awaited something that was not ready."""


def _run_now(coroutine: Awaitable[Any]) -> Any:
    # The publish route's only await (reading the body) is already satisfied here, so the
    # coroutine runs to its end in one step: no task, no loop round trip.
    assert isinstance(coroutine, Coroutine)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise _NotImmediate


def _parse_head(head: bytes) -> tuple[str, str, _Headers, int, bool] | None:
    """(method, raw path, headers, body length, keep alive) of a plain HTTP/1.1 POST or GET,
    else None."""
    text = head.decode("latin-1")  # decodes any byte
    line_ends = text.count("\r\n")
    if text.count("\r") != line_ends or text.count("\n") != line_ends:
        return None  # a bare CR or LF: aiohttp refuses it (and it could hide a request)
    request_line, _, header_block = text.partition("\r\n")
    if _HEADER_CONTROL.search(header_block):
        return None  # control characters in a header: aiohttp refuses them
    method, _, target = request_line.partition(" ")
    raw_path, _, version = target.partition(" ")
    if version != "HTTP/1.1" or method not in ("POST", "GET"):
        return None
    if not raw_path.isascii() or not raw_path.isprintable():
        return None
    headers = _Headers()
    if header_block:
        for line in header_block.split("\r\n"):
            name, colon, value = line.partition(":")
            key = name.lower()
            if not colon or key in headers:
                return None  # folded, malformed or repeated headers: aiohttp decides
            headers[key] = value.strip(" \t")
        # Every name must be a token: one match over all of them (an empty one is no token).
        if "" in headers or not _TOKEN.fullmatch("".join(headers)):
            return None
    if _DEFERRED_HEADERS.intersection(headers) or "host" not in headers:
        return None  # aiohttp's to serve, or to refuse (HTTP/1.1 requires Host)
    length_text = dict.get(headers, "content-length", "0")
    if not (length_text.isascii() and length_text.isdigit()) or len(length_text) > 9:
        return None
    connection = dict.get(headers, "connection", "")
    keep_alive = not connection or "close" not in {
        token.strip().lower() for token in connection.split(",")
    }
    return method, raw_path, headers, int(length_text), keep_alive


def _serialize(answer: web.Response, keep_alive: bool) -> bytes:
    body = answer.body
    payload = body if isinstance(body, bytes) else b""
    lines = [f"HTTP/1.1 {answer.status} {answer.reason}"]
    for name, value in answer.headers.items():
        if name.lower() not in ("content-length", "connection"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(payload)}")
    if not keep_alive:
        lines.append("Connection: close")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + payload
