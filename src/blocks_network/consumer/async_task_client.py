"""AsyncTaskClient and AsyncTaskSession: the consumer API for asyncio programs (issue 16).

What is shared with the sync :class:`TaskClient` is everything but the waiting: the
configuration and the one :class:`ConsumerAuth` (same refresh rules: 80 % of the TTL,
single flight on a refused token, ``on_auth_error`` after three failures), the request
building and answer reading of every RPC (:mod:`.rpc_client`, :mod:`.task_records`), and
each session's event logic (a :class:`TaskSession` fed by the client's poll loop, so open
sessions cost no thread in either API). What is async: the backend calls go over aiohttp
(:class:`AsyncBackendClient`), and waiting for a terminal or the next event is a future
the poll loop completes, not a blocked thread.

History catch-up (``connect``, idempotent re-sends) and file downloads are aiohttp
requests too (:class:`AsyncStorage`). Still blocking, so run on the client's pool of daemon
threads (:class:`BlockingCalls`, not ``asyncio.to_thread``, whose threads keep a process
from exiting): ``create`` (the CDM document and the first token), a token refresh, uploads
of file parts above the inline limit, the disk writes of ``save_artifacts`` and stream
writes (the writer waits when publishing falls behind). Stream reads are awaited
(:class:`AsyncStreamClient`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from blocks_network.auth.token_types import TokenResult
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.consumer import task_records
from blocks_network.consumer.artifacts import DownloadedArtifact, inline_or_file, save_artifacts
from blocks_network.consumer.async_backend import AsyncBackendClient
from blocks_network.consumer.async_storage import AsyncStorage
from blocks_network.consumer.events import TaskEvent
from blocks_network.consumer.parts import encode_request_parts
from blocks_network.consumer.realtime import SessionRealtime
from blocks_network.consumer.task_client import TaskClient
from blocks_network.consumer.task_session import TaskSession
from blocks_network.consumer.uploads import InputUploader
from blocks_network.errors import ArtifactError, AuthError, BackendError, ClosedError, ConfigError
from blocks_network.protocol.artifacts import ArtifactRef
from blocks_network.protocol.constants import (
    API_PATH_TASK_READ_TOKEN,
    STREAM_DRAIN_WINDOW_S,
    TASK_READ_TOKEN_ROLE_CONSUMER,
    TASK_READ_TOKEN_TIMEOUT_S,
    WAIT_FOR_TERMINAL_TIMEOUT_S,
)
from blocks_network.protocol.rpc import (
    METHOD_CANCEL_TASK,
    METHOD_GET_TASK,
    METHOD_SEND_MESSAGE,
    METHOD_TERMINATE_TASK,
)
from blocks_network.protocol.task_api import TaskInfo, TaskReadTokenRequest
from blocks_network.stream.async_client import AsyncStreamClient
from blocks_network.transport.async_http import AsyncHttpClient

__all__ = ["AsyncTaskClient", "AsyncTaskSession"]

logger = logging.getLogger(__name__)

#: How long a refresh thread waits for an async token provider to answer on the loop.
_PROVIDER_TIMEOUT_S = 30.0
#: How long save_artifacts' writer thread waits for one download on the loop: a bound for
#: the whole artifact (each of its GETs also has its own, FILE_TIMEOUT_S).
_SAVE_DOWNLOAD_TIMEOUT_S = 1200.0
#: Daemon threads one client's blocking calls run on (created on demand, idle ones exit).
CONSUMER_IO_WORKERS = 8
_CALLS_CLOSED = "this AsyncTaskClient was closed; create a new one"


class _UploadNeeded(Exception):
    """A part is a file above the inline limit: encode on a worker thread instead."""


def _no_upload(*_: object, **__: object) -> str:
    raise _UploadNeeded


class AsyncTaskSession:
    """A task as an asyncio consumer sees it: the same events, state and artifacts as the
    :class:`TaskSession` it wraps (``sync``), with waiting done by awaiting."""

    def __init__(self, session: TaskSession, client: AsyncTaskClient) -> None:
        self.sync = session
        self._client = client

    @property
    def task_id(self) -> str:
        return self.sync.task_id

    @property
    def state(self) -> str | None:
        return self.sync.state

    @property
    def is_terminal(self) -> bool:
        return self.sync.is_terminal

    @property
    def terminal_event(self) -> TaskEvent | None:
        return self.sync.terminal_event

    async def wait_for_terminal(
        self, timeout: float | None = WAIT_FOR_TERMINAL_TIMEOUT_S
    ) -> TaskEvent:
        """The terminal event once the task ends: the sync ``wait_for_terminal``'s result
        and errors (TimeoutError, AuthError when the subscription was refused, ClosedError),
        without holding a thread."""
        loop = asyncio.get_running_loop()
        #: True once the session is done, False when the timeout passed first.
        done: asyncio.Future[bool] = loop.create_future()

        def settle(ended: bool) -> None:
            if not done.done():
                done.set_result(ended)

        def wake() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, True)

        forget = self.sync._when_done(wake)
        # A timer on the future itself, not asyncio.wait_for: one loop turn less per wake.
        timer = None if timeout is None else loop.call_later(timeout, settle, False)
        try:
            ended = await done
        finally:
            forget()  # timed out or cancelled: repeated waits must not pile up callbacks
            if timer is not None:
                timer.cancel()
        if not ended:
            raise TimeoutError(
                f"task {self.task_id} did not end within {timeout} s (state: {self.state}); "
                "await wait_for_terminal() again, or cancel() it"
            )
        return self.sync.wait_for_terminal(timeout=0)

    async def events(self) -> AsyncIterator[TaskEvent]:
        """Every event, the past ones first, in order; ends after the terminal (or when the
        session is closed or its subscription refused)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue()

        def push(event: TaskEvent | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        unsubscribe = self.sync.on_event(push)
        forget = self.sync._when_done(lambda: push(None))
        try:
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event
                if event.is_terminal:
                    return
        finally:
            unsubscribe()
            forget()

    async def open_stream(
        self, name: str | None = None, timeout: float | None = WAIT_FOR_TERMINAL_TIMEOUT_S
    ) -> AsyncStreamClient:
        """Wait until stream ``name`` (declared name, else stream id; the first stream
        without one) is announced and open it: as ``wait_for_stream(name).open()``, with the
        same errors (TimeoutError, StreamUnavailableError when the task ended without it)."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake(*_: object) -> None:
            loop.call_soon_threadsafe(changed.set)

        unsubscribe = self.sync.on_stream(wake)
        forget = self.sync._when_done(wake)
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                changed.clear()
                try:
                    ref = self.sync.wait_for_stream(name, timeout=0)
                    break
                except TimeoutError:
                    if deadline is not None and loop.time() >= deadline:
                        what = f"stream {name!r}" if name else "a stream"
                        raise TimeoutError(
                            f"task {self.task_id} announced no {what} within {timeout} s; was "
                            "it sent with stream=True, and does its agent create that stream?"
                        ) from None
                remaining = None if deadline is None else deadline - loop.time()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        finally:
            unsubscribe()
            forget()
        return AsyncStreamClient(ref.open(), self._client._calls.run)

    async def list_artifacts(self) -> list[ArtifactRef]:
        """Every artifact reference seen so far, in arrival order."""
        return self.sync.list_artifacts()

    async def download_artifact(self, ref: ArtifactRef | Mapping[str, Any]) -> DownloadedArtifact:
        """The artifact's bytes: inline ones decoded at once, files downloaded over aiohttp.
        The sync ``download_artifact``'s errors (ArtifactError, ClosedError)."""
        self.sync._check_open()
        parsed = inline_or_file(ref)
        if isinstance(parsed, DownloadedArtifact):
            return parsed
        token = self.sync._read_token
        if token is None:
            raise ArtifactError(f"task {self.task_id}: no read token to download files with")
        return await self._client._storage.download(self.sync._realtime, token, parsed)

    async def save_artifacts(self, directory: str | Path) -> list[Path]:
        """As the sync ``save_artifacts`` (same names and errors): each artifact downloaded
        on this loop, then written to disk on a worker thread, one at a time."""
        loop = asyncio.get_running_loop()

        def download(ref: ArtifactRef) -> DownloadedArtifact:
            # On the writer thread: the download itself runs on the loop.
            future = asyncio.run_coroutine_threadsafe(self.download_artifact(ref), loop)
            try:
                return future.result(_SAVE_DOWNLOAD_TIMEOUT_S)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise ArtifactError(
                    f"downloading {ref.file_name!r} took over {_SAVE_DOWNLOAD_TIMEOUT_S} s"
                ) from None

        refs = self.sync.list_artifacts()
        return await self._client._calls.run(
            functools.partial(save_artifacts, refs, directory, download)
        )

    async def cancel(self) -> None:
        """Ask the agent to stop (RPC CancelTask); the terminal arrives as an event."""
        await self._client.cancel_task(self.task_id)

    async def terminate(self) -> None:
        """End the task (RPC TerminateTask); the terminal arrives as an event."""
        await self._client.terminate_task(self.task_id)

    async def close(self) -> None:
        """Stop listening; safe to call twice."""
        self.sync.close()

    async def __aenter__(self) -> AsyncTaskSession:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncTaskSession(task_id={self.task_id!r}, state={self.state!r})"


class AsyncTaskClient:
    """Submits and follows tasks from one asyncio event loop; ``async with`` or
    :meth:`aclose`. Build it with ``await AsyncTaskClient.create(...)``."""

    def __init__(
        self, core: TaskClient, *, owns_core: bool = True, calls: BlockingCalls | None = None
    ) -> None:
        self._core = core
        #: False when ``core`` is shared (an agent's ``ctx.task_client``): aclose leaves it.
        self._owns_core = owns_core
        #: Where blocking calls run: a shared pool (the agent instance's) or our own.
        self._owns_calls = calls is None
        self._calls = calls or _client_calls()
        self._http = AsyncHttpClient()
        self._backend = AsyncBackendClient(
            self._http, self._calls.run, core.config.base_url, core._auth
        )
        self._storage = AsyncStorage(self._http)

    @classmethod
    async def create(
        cls,
        billing_mode: str,
        *,
        token_provider: Callable[[], TokenResult | Awaitable[TokenResult]] | None = None,
        **options: Any,
    ) -> AsyncTaskClient:
        """As ``TaskClient.create`` (same options and errors); ``token_provider`` may also
        be an ``async def`` (it then runs on this event loop)."""
        provider: Callable[[], Any] | None = token_provider
        if token_provider is not None and inspect.iscoroutinefunction(token_provider):
            provider = _on_loop(token_provider, asyncio.get_running_loop())
        calls = _client_calls()
        try:
            core = await calls.run(
                functools.partial(
                    TaskClient.create, billing_mode, token_provider=provider, **options
                )
            )
        except BaseException:
            calls.close(timeout=0)
            raise
        client = cls(core, calls=calls)
        client._owns_calls = True  # made here for create(): aclose() closes it
        return client

    @property
    def billing_mode(self) -> str:
        return self._core.billing_mode

    def get_user_id(self) -> str | None:
        return self._core.get_user_id()

    async def _preflight(self) -> None:
        self._core._check_open()
        auth = self._core._auth
        if auth is not None and (auth.last_error is not None or auth.token is None):
            await self._calls.run(auth.preflight)

    async def send_message(
        self,
        agent_name: str,
        request_parts: Sequence[Any],
        *,
        owner_id: str | None = None,
        drain_window_s: float = STREAM_DRAIN_WINDOW_S,
        **options: Any,
    ) -> AsyncTaskSession:
        """As ``TaskClient.send_message`` (same options and errors); returns once the task
        exists and its subscription is started."""
        core = self._core
        await self._preflight()
        unknown = set(options) - set(_SEND_OPTIONS)
        if unknown:
            raise ConfigError(f"send_message: unknown options {sorted(unknown)}")
        fields = core._send_fields(
            agent_name, owner_id, {name: options.get(name) for name in _SEND_OPTIONS}
        )
        inline_limit = core.config.inline_limit_bytes
        try:
            wire_parts, upload_id = encode_request_parts(
                request_parts, inline_limit=inline_limit, upload=_no_upload
            )
        except _UploadNeeded:
            uploader = InputUploader(core._backend, agent_name)
            wire_parts, upload_id = await self._calls.run(
                functools.partial(
                    encode_request_parts,
                    request_parts,
                    inline_limit=inline_limit,
                    upload=uploader.upload,
                )
            )
        params = core._params(fields, wire_parts, upload_id)
        cursor = await self._cursor()
        result = core._parse_result(await self._backend.call(METHOD_SEND_MESSAGE, params.to_wire()))
        session = core._sent_session(result, fields, drain_window_s)
        if not result.idempotent:
            core._start_following(session, result, cursor)
            return AsyncTaskSession(session, self)
        try:
            await self._catch_up(session, result.state, follow=not result.is_terminal)
        except BackendError as exc:
            # The task exists whatever happens here: hand back the session anyway.
            logger.warning(
                "task %s: catch-up failed (%s); events may be missing", result.task_id, exc
            )
        return AsyncTaskSession(session, self)

    async def _catch_up(
        self, session: TaskSession, recorded_state: str | None, *, follow: bool
    ) -> None:
        """``session._catch_up`` with its history read over aiohttp."""
        session._check_open()
        before = await self._cursor(session._realtime)
        history = await self._storage.history(
            session._realtime, session.channel, session._read_token
        )
        session._catch_up(recorded_state, follow=follow, fetched=(before, history))

    async def _cursor(self, realtime: SessionRealtime | None = None) -> int:
        """The realtime cursor; its first call reads the server's clock (blocking)."""
        realtime = realtime or self._core._realtime
        if realtime.clock_calibrated:
            return realtime.cursor()
        cursor: int = await self._calls.run(realtime.cursor)
        return cursor

    async def connect(
        self,
        task_id: str,
        *,
        drain_window_s: float = STREAM_DRAIN_WINDOW_S,
        role: str = TASK_READ_TOKEN_ROLE_CONSUMER,
    ) -> AsyncTaskSession:
        """As ``TaskClient.connect``: a session pre-filled from the task's history."""
        core = self._core
        if core._auth is None or core._auth.token is None:
            raise AuthError(
                "connect() needs an authenticated client: create it with api_key=..., "
                "token_endpoint=... or token_provider=..."
            )
        await self._preflight()
        info = await self.get_task(task_id)
        response = await self._backend.request(
            "POST",
            API_PATH_TASK_READ_TOKEN,
            json_body=TaskReadTokenRequest(task_id, role).to_wire(),
            timeout=TASK_READ_TOKEN_TIMEOUT_S,
        )
        grant = task_records.read_token_answer(response)
        session = core._connected_session(info, grant, drain_window_s)
        try:
            await self._catch_up(session, info.state, follow=True)
        except BaseException:
            session.close()  # as the sync connect: a failed catch-up closes the session
            raise
        return AsyncTaskSession(session, self)

    async def get_task(self, task_id: str) -> TaskInfo:
        """The task's record (RPC GetTask). Raises RpcError (TASK_NOT_FOUND) if unknown."""
        await self._preflight()
        return task_records.task_info(
            await self._backend.call(METHOD_GET_TASK, {"taskId": task_id})
        )

    async def cancel_task(self, task_id: str) -> None:
        """Ask the agent to stop cooperatively (RPC CancelTask)."""
        await self._preflight()
        await self._backend.call(METHOD_CANCEL_TASK, {"taskId": task_id})

    async def terminate_task(self, task_id: str) -> None:
        """End the task (RPC TerminateTask)."""
        await self._preflight()
        await self._backend.call(METHOD_TERMINATE_TASK, {"taskId": task_id})

    async def aclose(self) -> None:
        """Close open sessions, stop the token refresh; safe to call twice. A client over a
        shared core (``owns_core=False``) closes only its own HTTP connections."""
        await self._http.aclose()
        if self._owns_core:
            # destroy() joins the poll loop's threads: not on the event loop.
            with contextlib.suppress(ClosedError):  # closed before: destroyed then
                await self._calls.run(self._core.destroy)
        if self._owns_calls:
            self._calls.close(timeout=0)  # idle daemon threads: nothing to wait for

    async def __aenter__(self) -> AsyncTaskClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


#: send_message's keyword options besides agent_name, parts, owner and drain window.
_SEND_OPTIONS = (
    "idempotency_key",
    "stream",
    "task_kind",
    "duration",
    "consumer_public_key",
    "push_notification_config",
    "retry_policy",
)


def _client_calls() -> BlockingCalls:
    return BlockingCalls(CONSUMER_IO_WORKERS, closed_message=_CALLS_CLOSED)


def _on_loop(
    provider: Callable[[], Awaitable[TokenResult]], loop: asyncio.AbstractEventLoop
) -> Callable[[], TokenResult]:
    """A sync provider for the refresh thread that runs ``provider()`` on ``loop``."""

    def call() -> TokenResult:
        if _running_on(loop):
            raise ConfigError(
                "an async token provider cannot be awaited from its own event loop: "
                "use the client from that loop with await, not from a blocking call on it"
            )
        future = asyncio.run_coroutine_threadsafe(_call(provider), loop)
        try:
            return future.result(_PROVIDER_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()  # leave nothing running on the loop for a token nobody waits for
            raise AuthError(
                f"the async token provider gave no token within {_PROVIDER_TIMEOUT_S} s; "
                "check that its event loop is running and the provider returns"
            ) from None

    return call


async def _call(provider: Callable[[], Awaitable[TokenResult]]) -> TokenResult:
    return await provider()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
