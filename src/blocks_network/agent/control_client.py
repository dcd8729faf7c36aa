"""The instance's one subscribed PubNub client: the control channel, presence, heartbeats.

Configured per protocol §9.2: user id = instance id, presence timeout 20 s with heartbeats
(every 9 s, or ``heartbeat_ms``), unbounded reconnects (43 200 retries, at most 60 s apart),
the instance filter ``meta.instance == '<id>' || meta.broadcast == "true"``, and a subscribe
timeout of :data:`SUBSCRIBE_TIMEOUT_S` so a silently dead connection is noticed quickly.
Requests go through the SDK's pooled handler, whose :meth:`close` also aborts the long-poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from pubnub.callbacks import SubscribeCallback
from pubnub.enums import PNStatusCategory
from pubnub.pubnub import PubNub

from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.constants import PRESENCE_TIMEOUT_S
from blocks_network.protocol.control import control_filter_expression
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint, create_pubnub
from blocks_network.transport.pubnub_http import use_pooled_requests

__all__ = ["SUBSCRIBE_TIMEOUT_S", "ControlClient", "ControlEvents"]

logger = logging.getLogger(__name__)

#: Above the pooled handler's long-poll threshold (30 s), far below PubNub's 310 s default.
SUBSCRIBE_TIMEOUT_S: Final = 60


class ControlEvents:
    """What the control client reports (callbacks run on the client's threads)."""

    def __init__(
        self,
        on_message: Callable[[object, object], None],
        on_reconnected: Callable[[], None],
        on_access_denied: Callable[[], None],
    ) -> None:
        self.on_message = on_message
        self.on_reconnected = on_reconnected
        self.on_access_denied = on_access_denied


class _Listener(SubscribeCallback):  # type: ignore[misc]
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

    def message(self, pubnub: PubNub, message: Any) -> None:
        self._events.on_message(message.message, getattr(message, "user_metadata", None))

    def presence(self, pubnub: PubNub, presence: Any) -> None:
        """Presence events of other instances are not used."""


class ControlClient:
    """Subscribes ``channel`` with ``token``; :meth:`close` leaves presence and stops."""

    def __init__(
        self,
        *,
        instance_id: str,
        keyset: Keyset,
        endpoint: RealtimeEndpoint,
        http: HttpClient,
        events: ControlEvents,
        heartbeat_ms: int | None = None,
        pubnub: PubNub | None = None,
    ) -> None:
        self._owned = pubnub is None
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
            )
            # The instance sends its own synchronous leave on stop (see close()).
            pubnub.config.suppress_leave_events = True
            use_pooled_requests(pubnub, http)
        else:
            pubnub.config.filter_expression = control_filter_expression(instance_id)
        if heartbeat_ms is not None:
            interval = max(1, min(heartbeat_ms // 1000, PRESENCE_TIMEOUT_S // 2 - 1))
            pubnub.config.set_presence_timeout_with_custom_interval(PRESENCE_TIMEOUT_S, interval)
        self.pubnub = pubnub
        self.keyset = keyset
        self._events = events
        self._connected = threading.Event()
        self._listener = _Listener(events, self._connected)
        self._channel: str | None = None
        self._closed = False
        self._lock = threading.Lock()

    def set_token(self, token: str | None) -> None:
        """Use ``token`` for the next control-channel requests (no resubscribe)."""
        if token:
            self.pubnub.set_token(token)

    def subscribe(self, channel: str, token: str | None, timeout: float) -> bool:
        """Subscribe ``channel``; True once connected within ``timeout`` seconds."""
        self.set_token(token)
        with self._lock:
            self._channel = channel
            self.pubnub.add_listener(self._listener)
        self.pubnub.subscribe().channels([channel]).execute()
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Stop listening; stop the client if we created it (else unsubscribe). Idempotent.

        No presence ``leave`` is sent here: the instance sends it synchronously afterwards,
        since the client's own leave runs on a thread of its own that ``stop()`` races.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            channel = self._channel
        try:
            self.pubnub.remove_listener(self._listener)
        except Exception:
            logger.debug("removing the control listener failed", exc_info=True)
        if self._owned:
            self.stop()
        elif channel is not None:
            try:
                self.pubnub.unsubscribe().channels([channel]).execute()
            except Exception:
                logger.debug("unsubscribing the control channel failed", exc_info=True)

    def stop(self) -> None:
        """Stop the client's threads and abort its long-poll (no presence leave)."""
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
