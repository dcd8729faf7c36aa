"""A faster HTTP layer for the official ``pubnub`` client: keep-alive ``http.client`` pools.

The client's default handler builds one ``httpx.Client`` per PubNub instance (about 35 ms:
it loads a CA bundle), spends about 0.8 ms more per request than ``http.client`` on
loopback, and starts a thread for every subscribe long-poll. The SDK creates a PubNub
client per task session (task read tokens are per task, and a client holds one token), so
it plugs this handler in through the client's public ``set_request_handler`` hook:

- short requests (publish, history, files, time) go through the owner's :class:`HttpClient`;
- each client's long-polls run one after another on one thread of its own
  (``blocks-pubnub-poll``), through the same transport and pool (so the same TLS trust and
  proxy as every other request); :meth:`close` aborts the one in flight, so a stopped
  client leaves no request blocked for minutes;
- everything above the socket (URLs, signing, envelopes, status categories, listeners)
  stays the client's own code: only ``_invoke_request`` and the thread hand-off change.

File uploads (the client's multipart ``files=``) are encoded here (``form_data.py``) and
sent like any other short request; a ``files=`` of another shape than ``send_file``'s
(form fields, then one ``file``) would still take the default httpx path.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import mimetypes
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

from pubnub.errors import PNERR_CLIENT_TIMEOUT, PNERR_CONNECTION_ERROR
from pubnub.exceptions import PubNubException
from pubnub.pubnub import PubNub
from pubnub.request_handlers.httpx import HttpxRequestHandler

from blocks_network.errors import CertificateError, ClosedError, ConfigError, NetworkError
from blocks_network.transport.base import Abort, Request
from blocks_network.transport.connections import format_headers
from blocks_network.transport.form_data import FORM_FILE_FIELD, encode_form_data
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pool import origin_key

__all__ = ["PooledRequestHandler", "use_pooled_requests"]

logger = logging.getLogger(__name__)

#: Requests with a longer timeout than this are subscribe long-polls (the client's own rule).
LONG_POLL_MIN_TIMEOUT_S: Final = 30
_SUBSCRIBE_OPERATION: Final = "Subscribe"
_POLL_THREAD_NAME: Final = "blocks-pubnub-poll"
_JOIN_TIMEOUT_S: Final = 5.0
_MAX_REDIRECTS: Final = 5
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
#: What an aborted long-poll of a stopped client answers: an empty, successful poll. An
#: error would make the client log it and start its reconnection timer, which can restart
#: the subscribe loop of a client that was stopped on purpose.
_EMPTY_POLL: Final = (200, {"content-type": "application/json"}, b'{"t":{"t":"0","r":0},"m":[]}')


class _Headers(dict[str, str]):
    """Response headers, looked up case-insensitively (keys are stored lower-case)."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _Url:
    __slots__ = ("host", "query", "scheme")

    def __init__(self, url: str, query: str) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.query = query.encode("utf-8")


class _Response:
    """The part of ``httpx.Response`` the client's envelope code reads.

    Real httpx objects validate the URL character by character (the access token makes it
    long): about 0.7 ms per request under load, for fields nobody needs.
    """

    http_version = "HTTP/1.1"
    request = None

    def __init__(
        self, status: int, headers: dict[str, str], content: bytes, url: str, query: str
    ) -> None:
        self.status_code = status
        self.headers = _Headers(headers)
        self.content = content
        self.url = _Url(url, query)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Poller:
    """One thread running a client's long-polls in order (the client issues the next poll
    from the previous one's callback, so they never overlap)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=_POLL_THREAD_NAME, daemon=True)
        self._thread.start()

    def try_submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; False if another thread's poll is running (caller runs it itself)."""
        if self._busy and threading.current_thread() is not self._thread:
            return False
        self._jobs.put(job)
        return True

    def _run(self) -> None:
        # Jobs queued behind close()'s sentinel are dropped with the thread.
        while (job := self._jobs.get()) is not None:
            self._busy = True
            try:
                job()
            except Exception:
                logger.exception("subscribe request failed")
            finally:
                self._busy = False

    def close(self) -> None:
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(_JOIN_TIMEOUT_S)


class PooledRequestHandler(HttpxRequestHandler):  # type: ignore[misc]
    """Request handler for one PubNub client; short requests use a shared ``HttpClient``.

    Thread-safe like the handler it replaces. :meth:`close` aborts the client's in-flight
    long-poll and ends its poll thread; short requests keep working afterwards (the shared
    pool stays open), so a stopped client can still download files.
    """

    def __init__(self, pubnub: PubNub, pool: HttpClient) -> None:
        super().__init__(pubnub)
        self._http = pool
        self._poll_lock = threading.Lock()
        self._abort = Abort()
        self._poller: _Poller | None = None
        self._closed = False

    # --- threads -----------------------------------------------------------------------------

    def execute_callback_in_separate_thread(
        self,
        callback_to_invoke_in_another_thread: Callable[[], None],
        operation_name: str,
        call_obj: Any,
        cancellation_event: threading.Event,
    ) -> Any:
        """Run subscribe long-polls on the client's poll thread, anything else as before."""
        if operation_name == _SUBSCRIBE_OPERATION:
            with self._poll_lock:
                if self._closed:
                    # A stopped client polls no more (the client may still ask once).
                    call_obj.cancellation_event = cancellation_event
                    return call_obj
                if self._poller is None:
                    self._poller = _Poller()
                poller = self._poller
            if poller is not None and poller.try_submit(callback_to_invoke_in_another_thread):
                call_obj.cancellation_event = cancellation_event
                return call_obj
        return super().execute_callback_in_separate_thread(
            callback_to_invoke_in_another_thread, operation_name, call_obj, cancellation_event
        )

    def prepare(self, scheme: str, origin: str) -> None:
        """Start the poll thread and open the poll connection ahead of the first subscribe
        (so a client built in advance costs nothing on the caller's critical path)."""
        parts = urlsplit(f"{scheme}://{origin}")
        with self._poll_lock:
            if self._closed:
                return
            if self._poller is None:
                self._poller = _Poller()
        # Best effort: the first poll connects (and reports failures) if this cannot.
        with contextlib.suppress(OSError, ConfigError, ClosedError):
            self._http.transport.open_ahead(
                origin_key(parts.scheme, parts.hostname or "", parts.port)
            )

    # --- requests -----------------------------------------------------------------------------

    def _invoke_request(self, p_options: Any, e_options: Any, base_origin: str | None) -> Any:
        upload = _multipart(e_options.files) if e_options.files else None
        if e_options.files and upload is None:
            return super()._invoke_request(p_options, e_options, base_origin)
        if base_origin:
            url = f"{p_options.pn_config.scheme()}://{base_origin}{e_options.path}"
        else:
            url = e_options.path.split("?", 1)[0]
        query = e_options.query_string
        headers = dict(p_options.headers)
        if e_options.request_headers:
            headers.update(e_options.request_headers)
        body = e_options.data if (e_options.is_post() or e_options.is_patch()) else None
        if isinstance(body, str):
            body = body.encode("utf-8")
        if upload is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            body, headers["Content-Type"] = upload
        method = e_options.method_string
        timeout = float(e_options.request_timeout)
        for _ in range(_MAX_REDIRECTS + 1):
            full = f"{url}?{query}" if query else url
            if timeout > LONG_POLL_MIN_TIMEOUT_S:
                status, resp_headers, data = self._long_poll(method, full, headers, timeout)
            else:
                status, resp_headers, data = self._short(method, full, body, headers, timeout)
            location = resp_headers.get("location")
            if not (e_options.allow_redirects and status in _REDIRECT_STATUSES and location):
                break
            url, _, query = urljoin(full, location).partition("?")
            method, body = "GET", None
        return _Response(status, resp_headers, data, url, query)

    def _short(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            resp = self._http.request(
                method, url, body=body, headers=headers, timeout=timeout, retry_transient=False
            )
        except NetworkError as exc:
            raise _pubnub_error(exc.__cause__ or exc) from exc
        except (CertificateError, ClosedError) as exc:
            raise _pubnub_error(exc) from exc
        return resp.status, dict(resp.headers), resp.body

    def _long_poll(
        self, method: str, url: str, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        origin = origin_key(parts.scheme, parts.hostname or "", parts.port)
        request = Request(
            method, origin, target, format_headers(headers), None, timeout, self._abort
        )
        try:
            response = self._http.transport.handle_request(request)
        except (OSError, http.client.HTTPException, ConfigError, ClosedError) as exc:
            if self._closed:
                return _EMPTY_POLL
            raise _pubnub_error(exc) from exc
        return response.status, dict(response.headers), response.body

    def close(self) -> None:
        """Abort the in-flight long-poll (if any) and end the poll thread; idempotent."""
        with self._poll_lock:
            self._closed = True
            poller, self._poller = self._poller, None
        self._abort.abort()
        if poller is not None:
            poller.close()
        # The httpx session exists only if a file upload went through the default path.
        if self._session is not None:
            super().close()
        else:
            self._watchdog.stop()


def _multipart(files: Any) -> tuple[bytes, str] | None:
    """``send_file``'s ``files=`` (``{field: (None, value), ..., "file": (name, data,
    type)}``) as a ``multipart/form-data`` body and its Content-Type; None for any other
    shape. The file's type, when None, is guessed from its name as httpx does."""
    if not isinstance(files, dict) or FORM_FILE_FIELD not in files:
        return None
    fields = []
    for name, part in files.items():
        if name != FORM_FILE_FIELD:
            if not (isinstance(part, tuple) and len(part) == 2 and part[0] is None):
                return None
            fields.append((str(name), str(part[1])))
    file_part = files[FORM_FILE_FIELD]
    if not (isinstance(file_part, tuple) and len(file_part) == 3):
        return None
    file_name, data, content_type = file_part
    if hasattr(data, "read"):
        data = data.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes):
        return None
    file_name = str(file_name or "upload")
    if content_type is None:
        content_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    return encode_form_data(fields, file_name=file_name, content_type=content_type, data=data)


def _pubnub_error(exc: BaseException) -> PubNubException:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return PubNubException(pn_error=PNERR_CLIENT_TIMEOUT, errormsg=str(exc) or "timed out")
    return PubNubException(pn_error=PNERR_CONNECTION_ERROR, errormsg=str(exc) or type(exc).__name__)


def use_pooled_requests(client: PubNub, pool: HttpClient) -> PubNub:
    """Switch ``client`` to :class:`PooledRequestHandler` over ``pool``; returns ``client``."""
    client.set_request_handler(PooledRequestHandler(client, pool))
    return client
