"""Task-event publishes and presence-state updates as plain keep-alive HTTP requests.

Write tokens are per task (and bound to the instance id), while a PubNub client holds one
token at a time. Rather than a client per task, every publish is one ``POST /publish/...``
with that task's token in ``auth=``, over the shared connection pool: the same request the
official client sends with ``use_post=True`` (pubnub-wire.md §2), without a client object.

A task's events that are ready together (an inline artifact and the terminal, say) may be
*pipelined*: the next publish is written on the previous one's connection before its answer
is read (:meth:`RealtimeHttp.pipeline_publish`), so the local network serves them in one
turn and one commit. Whether to pipeline is :func:`pipelining_for`'s choice.

Presence state goes the same way (``GET /v2/presence/.../data?state=``): the official client's
``set_state`` also restarts its subscribe loop, leaving the old long-poll thread waiting,
which would cost a thread per task start and end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote

from blocks_network.agent.reachability import Reachability
from blocks_network.errors import ConfigError, NetworkError
from blocks_network.protocol.cdm import Keyset
from blocks_network.transport.connections import split_origin
from blocks_network.transport.http_client import (
    AnswerLost,
    HttpClient,
    HttpResponse,
    PendingResponse,
    RequestNotSent,
)
from blocks_network.transport.proxies import proxy_for
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.pubnub_query import PNSDK, encode_params, identity_query

__all__ = [
    "ENV_PIPELINE_EVENTS",
    "PNSDK",
    "PendingPublish",
    "PublishOutcome",
    "RealtimeHttp",
    "pipelining_for",
]

logger = logging.getLogger(__name__)

#: Publishes are small and local: fail fast rather than hold a worker for 30 s.
_REQUEST_TIMEOUT_S: Final = 10.0
_JSON_HEADERS: Final = {"Content-Type": "application/json"}
#: How many of a channel's newest messages a history check reads (one page).
HISTORY_CHECK_COUNT: Final = 100
#: Answers after which the server may or may not have stored the message.
_UNCERTAIN_STATUSES: Final = frozenset({408, 429})

#: ``accepted``: stored; ``refused``: the server said no (4xx), resending will not help;
#: ``unsent``: it never reached the server; ``unknown``: sent, but no (clear) answer came.
PublishStatus = Literal["accepted", "refused", "unsent", "unknown"]


@dataclass(frozen=True)
class PublishOutcome:
    """What became of one publish attempt."""

    status: PublishStatus
    detail: str = ""
    #: The accepted publish's answer, ``[1,"Sent","<timetoken>"]`` (parsed only if needed).
    body: bytes = b""

    @property
    def timetoken(self) -> int | None:
        """The stored message's timetoken (accepted publishes), else None."""
        try:
            return int(json.loads(self.body)[2])
        except (ValueError, TypeError, IndexError, KeyError):
            return None


#: ``1``: pipeline a task's events to any origin; ``0``: never; unset: see pipelining_for.
ENV_PIPELINE_EVENTS: Final = "BLOCKS_PIPELINE_EVENTS"


def pipelining_for(endpoint: RealtimeEndpoint, setting: str | None = None) -> bool:
    """Whether to pipeline a task's events to ``endpoint``: ``setting`` (the value of
    :data:`ENV_PIPELINE_EVENTS`) ``1`` or ``0`` decides; otherwise only over plain HTTP with
    no proxy in between (the local network). Edges and proxies in front of the hosted
    service are not known to keep pipelined requests apart, and a lost pipelined answer
    costs a history check and a resend."""
    value = (setting or "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if endpoint.ssl:
        return False
    host, port = split_origin(endpoint.origin, 80)
    try:
        return proxy_for("http", host, port) is None
    except ConfigError:
        return False  # a proxy is set (and refused when the agent connects)


def _segment(value: str) -> str:
    return quote(value, safe="~")


class RealtimeHttp:
    """Publishes and sets presence state as ``user_id`` (the instance id). Thread-safe.

    Methods never raise for network or HTTP failures: they log and return False, since the
    agent swallows publish failures (protocol §3.2).
    """

    def __init__(
        self,
        http: HttpClient,
        endpoint: RealtimeEndpoint,
        user_id: str,
        publish_http: HttpClient | None = None,
        *,
        reachability: Reachability,
        pipelining: bool = False,
    ) -> None:
        self._http = http
        #: Where presence and heartbeat failures are reported (one warning per outage).
        self.reachability = reachability
        # Publishes get connections of their own when given: a connection that carries
        # nothing else stays on the local network's fast publish path.
        self._publish_http = publish_http or http
        self._base = f"{'https' if endpoint.ssl else 'http'}://{endpoint.origin}"
        self._user_id = user_id
        self._pipelining = pipelining

    def _query(self, token: str | None, extra: dict[str, str]) -> str:
        identity = identity_query(self._user_id, token)
        return f"{encode_params(extra)}&{identity}" if extra else identity

    def publish(
        self,
        keyset: Keyset,
        channel: str,
        message: Any,
        *,
        token: str | None,
        meta: dict[str, Any] | None = None,
        store: bool = True,
    ) -> bool:
        """POST-publish ``message`` on ``channel``; True when the server accepted it."""
        return self.start_publish(
            keyset, channel, message, token=token, meta=meta, store=store
        ).wait()

    def start_publish(
        self,
        keyset: Keyset,
        channel: str,
        message: Any,
        *,
        token: str | None,
        meta: dict[str, Any] | None = None,
        store: bool = True,
    ) -> PendingPublish:
        """Send a publish now; :meth:`PendingPublish.wait` tells later whether it was
        accepted. Every started publish must be waited for (it holds a connection)."""
        url, body = self._publish_request(keyset, channel, message, token, meta, store)
        pending = self._publish_http.start(
            "POST", url, body=body, headers=_JSON_HEADERS, timeout=_REQUEST_TIMEOUT_S
        )
        return PendingPublish(pending, f"publish on {channel}", message)

    def pipeline_publish(
        self,
        after: PendingPublish,
        keyset: Keyset,
        channel: str,
        message: Any,
        *,
        token: str | None,
        meta: dict[str, Any] | None = None,
        defer: bool = False,
    ) -> PendingPublish | None:
        """Send a publish on ``after``'s connection before ``after`` is answered (its answer
        is read first); None, with nothing sent, when pipelining is off or ``after``'s
        connection cannot take it: publish after ``after`` is answered then. ``defer``:
        it goes out in one write with the next publish on the connection, or before the
        first answer on it is read."""
        if not self._pipelining:
            return None
        url, body = self._publish_request(keyset, channel, message, token, meta, True)
        pending = after.pipeline("POST", url, body, _JSON_HEADERS, _REQUEST_TIMEOUT_S, defer)
        return (
            None if pending is None else PendingPublish(pending, f"publish on {channel}", message)
        )

    def _publish_request(
        self,
        keyset: Keyset,
        channel: str,
        message: Any,
        token: str | None,
        meta: dict[str, Any] | None,
        store: bool,
    ) -> tuple[str, bytes]:
        extra = {"store": "1" if store else "0"}
        if meta:
            extra["meta"] = json.dumps(meta, separators=(",", ":"))
        url = (
            f"{self._base}/publish/{_segment(keyset.publish_key)}/{_segment(keyset.subscribe_key)}"
            f"/0/{_segment(channel)}/0?{self._query(token, extra)}"
        )
        return url, json.dumps(message, separators=(",", ":")).encode("utf-8")

    def find_in_history(
        self,
        keyset: Keyset,
        channel: str,
        message: Any,
        *,
        token: str | None,
        after: int | None,
    ) -> int | None:
        """The timetoken of ``message`` among ``channel``'s newest stored messages with a
        timetoken above ``after``; 0 when it is not there; None when the history cannot be
        read (the caller cannot tell)."""
        extra = {"max": str(HISTORY_CHECK_COUNT)}
        url = (
            f"{self._base}/v3/history/sub-key/{_segment(keyset.subscribe_key)}/channel/"
            f"{_segment(channel)}?{self._query(token, extra)}"
        )
        try:
            response = self._http.request("GET", url, timeout=_REQUEST_TIMEOUT_S)
        except NetworkError as exc:
            logger.debug("history check on %s failed: %s", channel, exc)
            return None
        body = response.json() if response.status == 200 else None
        if not isinstance(body, dict) or not isinstance(body.get("channels"), dict):
            logger.warning(
                "history check on %s failed: HTTP %s %s",
                channel,
                response.status,
                response.text[:200],
            )
            return None
        for item in body["channels"].get(channel) or []:
            try:
                timetoken = int(item["timetoken"])
            except (KeyError, TypeError, ValueError):
                continue
            if (after is None or timetoken > after) and item.get("message") == message:
                return timetoken
        return 0

    def set_state(
        self, keyset: Keyset, channel: str, state: dict[str, Any], *, token: str | None
    ) -> bool:
        """Replace this uuid's presence state on ``channel``; True when accepted."""
        extra = {"state": json.dumps(state, separators=(",", ":"))}
        url = (
            f"{self._base}/v2/presence/sub-key/{_segment(keyset.subscribe_key)}/channel/"
            f"{_segment(channel)}/uuid/{_segment(self._user_id)}/data?{self._query(token, extra)}"
        )
        return self._send("GET", url, None, f"presence update on {channel}")

    def heartbeat(
        self, keyset: Keyset, channel: str, *, token: str | None, presence_timeout_s: int
    ) -> bool:
        """Tell presence this uuid is still on ``channel`` (pubnub-wire.md presence
        heartbeat); True when accepted."""
        url = (
            f"{self._base}/v2/presence/sub-key/{_segment(keyset.subscribe_key)}/channel/"
            f"{_segment(channel)}/heartbeat?"
            f"{self._query(token, {'heartbeat': str(presence_timeout_s)})}"
        )
        return self._send("GET", url, None, f"presence heartbeat on {channel}")

    def leave(self, keyset: Keyset, channel: str, *, token: str | None) -> bool:
        """Leave ``channel``'s presence now (the instance stops being a candidate at once)."""
        url = (
            f"{self._base}/v2/presence/sub-key/{_segment(keyset.subscribe_key)}/channel/"
            f"{_segment(channel)}/leave?{self._query(token, {})}"
        )
        return self._send("GET", url, None, f"presence leave on {channel}")

    def _send(self, method: str, url: str, body: bytes | None, what: str) -> bool:
        headers = _JSON_HEADERS if body is not None else None
        return _accepted(
            lambda: self._http.request(
                method, url, body=body, headers=headers, timeout=_REQUEST_TIMEOUT_S
            ),
            what,
            self.reachability,
        )


class PendingPublish:
    """A publish :meth:`RealtimeHttp.start_publish` sent (once: it is never resent here)."""

    def __init__(self, pending: PendingResponse, what: str, message: Any = None) -> None:
        self._pending = pending
        self._what = what
        #: What was published (resent by the outbox if the publish fails).
        self.message = message
        self._outcome: PublishOutcome | None = None

    def pipeline(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        defer: bool,
    ) -> PendingResponse | None:
        """The request sent behind this one on its connection (see
        :meth:`PendingResponse.pipeline`); None when it cannot be."""
        if self._outcome is not None:
            return None
        return self._pending.pipeline(
            method, url, body=body, headers=headers, timeout=timeout, defer=defer
        )

    def outcome(self) -> PublishOutcome:
        """What the server did with the publish (blocking until it answers); idempotent."""
        if self._outcome is None:
            self._outcome = self._read()
        return self._outcome

    def _read(self) -> PublishOutcome:
        try:
            response = self._pending.result_once()
        except RequestNotSent as exc:
            return PublishOutcome("unsent", str(exc))
        except AnswerLost as exc:
            return PublishOutcome("unknown", str(exc))
        status = response.status
        if status == 200:
            return PublishOutcome("accepted", body=response.body)
        detail = f"HTTP {status} {response.text[:200]}"
        if status == 403:
            logger.warning(
                "%s refused (HTTP 403): the task's access token expired or was revoked",
                self._what,
            )
        elif status < 500 and status not in _UNCERTAIN_STATUSES:
            logger.warning("%s failed: %s", self._what, detail)
        if status < 500 and status not in _UNCERTAIN_STATUSES:
            return PublishOutcome("refused", detail)
        return PublishOutcome("unknown", detail)

    def wait(self) -> bool:
        """True when the server accepted the publish; idempotent."""
        return self.outcome().status == "accepted"


def _accepted(respond: Callable[[], HttpResponse], what: str, reach: Reachability) -> bool:
    try:
        response = respond()
    except NetworkError as exc:
        reach.failed(what, str(exc))
        return False
    if response.status == 200:
        reach.answered()
        return True
    if response.status == 403:
        logger.warning(
            "%s refused (HTTP 403): the task's access token expired or was revoked", what
        )
    elif response.status >= 500:
        reach.failed(what, f"HTTP {response.status}")
    else:
        logger.warning("%s failed: HTTP %s %s", what, response.status, response.text[:200])
    return False
