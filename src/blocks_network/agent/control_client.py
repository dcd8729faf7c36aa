"""The instance's control channel: StartTask and friends in, presence and heartbeats out.

Configured per protocol §9.2: user id = instance id, presence timeout 20 s with heartbeats
(every 9 s, or ``heartbeat_ms``), reconnects without end (back-off up to 30 s), the
instance filter ``meta.instance == '<id>' || meta.broadcast == "true"``, and a subscribe
timeout of :data:`SUBSCRIBE_TIMEOUT_S` so a silently dead connection is noticed quickly.

The subscription is a plain keep-alive long-poll loop (:mod:`blocks_network.transport.
subscription`) on one ``blocks-agent-control`` thread: the official client hands each
response through two more threads and a queue, ~2 ms on every StartTask. An official
client is still built, unsubscribed, for the handle's ``pubnub`` and ``on_start_task``.
A client the user passes in (``AgentInstanceOptions.pubnub``) is subscribed as it is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from pubnub.callbacks import SubscribeCallback
from pubnub.enums import PNStatusCategory
from pubnub.pubnub import PubNub

from blocks_network.agent.realtime_http import RealtimeHttp
from blocks_network.agent.scheduler import Scheduler, TimerHandle
from blocks_network.errors import ClosedError
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.constants import PRESENCE_TIMEOUT_S
from blocks_network.protocol.control import control_filter_expression
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import (
    RealtimeEndpoint,
    create_pubnub,
    set_client_config,
)
from blocks_network.transport.pubnub_http import use_pooled_requests
from blocks_network.transport.subscription import (
    ChannelSubscription,
    PollConnections,
    PollFailure,
    SubscriptionSink,
)

__all__ = ["SUBSCRIBE_TIMEOUT_S", "ControlClient", "ControlEvents"]

logger = logging.getLogger(__name__)

#: Above the pooled handler's long-poll threshold (30 s), far below PubNub's 310 s default.
SUBSCRIBE_TIMEOUT_S: Final = 60
_THREAD_NAME: Final = "blocks-agent-control"


class ControlEvents:
    """What the control client reports (callbacks run on the client's threads)."""

    def __init__(
        self,
        on_message: Callable[[object, object], None],
        on_reconnected: Callable[[], None],
        on_access_denied: Callable[[], None],
        on_connection_lost: Callable[[], None] | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_reconnected = on_reconnected
        self.on_access_denied = on_access_denied
        #: Each failed poll (the network may be restarting; warned about once per outage).
        self.on_connection_lost = on_connection_lost


class _Listener(SubscribeCallback):  # type: ignore[misc]
    """Adapts a user-supplied official client's callbacks to :class:`ControlEvents`."""

    def __init__(self, events: ControlEvents, connected: threading.Event) -> None:
        super().__init__()
        self._events = events
        self._connected = connected

    def status(self, pubnub: PubNub, status: Any) -> None:
        category = getattr(status, "category", None)
        if category == PNStatusCategory.PNConnectedCategory:
            self._connected.set()
            self._events.on_reconnected()
        elif category == PNStatusCategory.PNReconnectedCategory:
            logger.info("control channel reconnected")
            self._events.on_reconnected()
        elif category == PNStatusCategory.PNAccessDeniedCategory:
            self._events.on_access_denied()
        elif category in (
            PNStatusCategory.PNUnexpectedDisconnectCategory,
            PNStatusCategory.PNNetworkIssuesCategory,
        ):
            logger.warning("control channel connection lost; reconnecting")
            if self._events.on_connection_lost is not None:
                self._events.on_connection_lost()

    def message(self, pubnub: PubNub, message: Any) -> None:
        self._events.on_message(message.message, getattr(message, "user_metadata", None))

    def presence(self, pubnub: PubNub, presence: Any) -> None:
        """Presence events of other instances are not used."""


class ControlClient:
    """Subscribes ``channel`` with ``token``; :meth:`close` stops (the instance leaves
    presence itself afterwards)."""

    def __init__(
        self,
        *,
        instance_id: str,
        keyset: Keyset,
        endpoint: RealtimeEndpoint,
        http: HttpClient,
        events: ControlEvents,
        realtime: RealtimeHttp,
        scheduler: Scheduler,
        heartbeat_ms: int | None = None,
        pubnub: PubNub | None = None,
    ) -> None:
        self._owned = pubnub is None
        interval = PRESENCE_TIMEOUT_S // 2 - 1
        if heartbeat_ms is not None:
            interval = max(1, min(heartbeat_ms // 1000, interval))
        if pubnub is None:
            pubnub = create_pubnub(
                subscribe_key=keyset.subscribe_key,
                publish_key=keyset.publish_key,
                user_id=instance_id,
                endpoint=endpoint,
                presence_timeout=PRESENCE_TIMEOUT_S,
                heartbeat=True,
                unbounded_reconnect=True,
                filter_expression=control_filter_expression(instance_id),
                subscribe_timeout=SUBSCRIBE_TIMEOUT_S,
                # The instance sends its own synchronous leave on stop (see close()).
                suppress_leave_events=True,
            )
            use_pooled_requests(pubnub, http)
        else:
            set_client_config(pubnub, filter_expression=control_filter_expression(instance_id))
            if heartbeat_ms is not None:
                # What PNConfiguration.set_presence_timeout_with_custom_interval sets.
                set_client_config(
                    pubnub,
                    heartbeat_default_values=False,
                    _presence_timeout=PRESENCE_TIMEOUT_S,
                    _heartbeat_interval=interval,
                )
        self.pubnub = pubnub
        self.keyset = keyset
        self._instance_id = instance_id
        self._endpoint = endpoint
        self._events = events
        self._realtime = realtime
        self._scheduler = scheduler
        self._heartbeat_interval_s = float(interval)
        self._connected = threading.Event()
        self._listener = _Listener(events, self._connected)
        self._channel: str | None = None
        self._token: str | None = None
        self._subscription: ChannelSubscription | None = None
        self._polls: tuple[PollThreads, PollConnections] | None = None
        self._heartbeat: TimerHandle | None = None
        self._closed = False
        self._lock = threading.Lock()

    def set_token(self, token: str | None) -> None:
        """Use ``token`` for the next control-channel requests (no resubscribe)."""
        if not token:
            return
        with self._lock:
            self._token = token
            subscription = self._subscription
        if subscription is not None:
            subscription.set_token(token)
        self.pubnub.set_token(token)

    def subscribe(self, channel: str, token: str | None, timeout: float) -> bool:
        """Subscribe ``channel``; True once connected within ``timeout`` seconds."""
        self.set_token(token)
        if not self._owned:
            with self._lock:
                self._channel = channel
                self.pubnub.add_listener(self._listener)
            self.pubnub.subscribe().channels([channel]).execute()
            return self._connected.wait(timeout)
        polls = (
            PollThreads(thread_name=_THREAD_NAME),
            PollConnections(self._endpoint, timeout_s=SUBSCRIBE_TIMEOUT_S),
        )
        with self._lock:
            if self._closed:
                return False
            self._channel = channel
            self._polls = polls
            self._subscription = ChannelSubscription(
                endpoint=self._endpoint,
                subscribe_key=self.keyset.subscribe_key,
                channel=channel,
                token=self._token,
                user_id=self._instance_id,
                cursor=0,
                sink=SubscriptionSink(
                    self._on_message, self._on_denied, self._on_connected, self._on_failed
                ),
                threads=polls[0],
                connections=polls[1],
                filter_expr=control_filter_expression(self._instance_id),
                heartbeat=PRESENCE_TIMEOUT_S,
            )
            self._subscription.start()
        self._schedule_heartbeat()
        return self._connected.wait(timeout)

    # --- the plain subscription's callbacks (on the control thread) --------------------------

    def _on_message(
        self, message: object, timetoken: int | None, meta: object, publisher: str | None
    ) -> None:
        self._events.on_message(message, meta)

    def _on_denied(self) -> None:
        self._events.on_access_denied()

    def _on_connected(self, reconnected: bool) -> None:
        self._connected.set()
        self._realtime.reachability.answered()  # logs "reconnected" once after an outage
        self._events.on_reconnected()

    def _on_failed(self, why: PollFailure, description: str) -> None:
        # One warning per outage for the whole instance (presence fails alongside).
        self._realtime.reachability.failed("control channel", description)
        # Every time: a state announced to a network that was going down is lost with it.
        if self._events.on_connection_lost is not None:
            self._events.on_connection_lost()

    def _schedule_heartbeat(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._heartbeat = self._scheduler.call_later(
                    self._heartbeat_interval_s, self._send_heartbeat
                )
            except ClosedError:
                self._heartbeat = None

    def _send_heartbeat(self) -> None:
        # Presence also counts the long-poll, but the official client sends these too.
        with self._lock:
            channel, token, closed = self._channel, self._token, self._closed
        if closed or channel is None:
            return
        self._realtime.heartbeat(
            self.keyset, channel, token=token, presence_timeout_s=PRESENCE_TIMEOUT_S
        )
        self._schedule_heartbeat()

    def close(self) -> None:
        """Stop listening; stop the client if we created it (else unsubscribe). Idempotent.

        No presence ``leave`` is sent here: the instance sends it synchronously afterwards,
        since the official client's own leave runs on a thread of its own that ``stop()``
        races.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            channel = self._channel
            subscription, polls, heartbeat = self._subscription, self._polls, self._heartbeat
        if heartbeat is not None:
            heartbeat.cancel()
        if subscription is not None:
            subscription.stop()
        if polls is not None:
            polls[0].close()
            polls[1].close()
        if self._owned:
            self.stop()
            return
        try:
            self.pubnub.remove_listener(self._listener)
        except Exception:
            logger.debug("removing the control listener failed", exc_info=True)
        if channel is not None:
            try:
                self.pubnub.unsubscribe().channels([channel]).execute()
            except Exception:
                logger.debug("unsubscribing the control channel failed", exc_info=True)

    def stop(self) -> None:
        """Stop the official client's threads and abort its requests (no presence leave)."""
        try:
            self.pubnub.stop()
        except Exception:
            logger.debug("stopping the control client failed", exc_info=True)
        handler = getattr(self.pubnub, "_request_handler", None)
        close = getattr(handler, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                logger.debug("closing the control client's connections failed", exc_info=True)
