"""Creating official ``pubnub`` clients the way every part of the SDK needs them.

Also installs the workaround for the client's file-event bug (pubnub-wire.md §10.1):
without it, one file message on a subscribed channel silently ends event delivery.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from pubnub.enums import PNReconnectionPolicy
from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

logger = logging.getLogger(__name__)

#: PubNub's hosted origin, used when the CDM document names no realtime origin.
DEFAULT_ORIGIN = "ps.pndsn.com"

_patch_lock = threading.Lock()
_patched = False


def install_pubnub_workarounds() -> None:
    """Give subscription objects the ``file_message`` method the client calls on them.

    Idempotent and process-wide. It forwards to ``on_file`` when the subscription has one.
    """
    global _patched
    with _patch_lock:
        if _patched:
            return
        from pubnub.models.subscription import PNEventEmitter

        if not hasattr(PNEventEmitter, "file_message"):

            def file_message(self: Any, file_message: Any) -> None:
                handler = getattr(self, "on_file", None)
                if handler is not None and self.is_matching_listener(file_message):
                    handler(file_message)

            PNEventEmitter.file_message = file_message
        _patched = True


@dataclass(frozen=True)
class RealtimeEndpoint:
    """Where the realtime API is: ``origin`` is ``host[:port]`` as PNConfiguration wants it."""

    origin: str = DEFAULT_ORIGIN
    ssl: bool = True


def create_pubnub(
    *,
    subscribe_key: str,
    publish_key: str | None,
    user_id: str,
    endpoint: RealtimeEndpoint,
    token: str | None = None,
    presence_timeout: int | None = None,
    heartbeat: bool = False,
    unbounded_reconnect: bool = False,
    filter_expression: str | None = None,
    subscribe_timeout: int | None = None,
    suppress_leave_events: bool = False,
) -> PubNub:
    """A configured client; it makes no request until used. ``stop()`` it when done.

    Its configuration is locked (``PubNub`` keeps a frozen copy), as the client's
    deprecation of mutable configs asks: every setting is made here, before it is built.
    """
    install_pubnub_workarounds()
    config = PNConfiguration()
    # Opt in to the locked config now: the mutable default warns in every user's project.
    config.disable_config_locking = False
    config.subscribe_key = subscribe_key
    config.publish_key = publish_key
    config.user_id = user_id
    config.origin = endpoint.origin
    config.ssl = endpoint.ssl
    # The client's request threads must not keep the process alive.
    config.daemon = True
    if presence_timeout is not None:
        config.set_presence_timeout(presence_timeout)
    config.enable_presence_heartbeat = heartbeat
    if unbounded_reconnect:
        config.reconnect_policy = PNReconnectionPolicy.EXPONENTIAL
        config.maximum_reconnection_retries = 43_200
        config.maximum_reconnection_interval = 60
    if filter_expression:
        config.filter_expression = filter_expression
    if subscribe_timeout is not None:
        config.subscribe_request_timeout = subscribe_timeout
    config.suppress_leave_events = suppress_leave_events
    client = PubNub(config)
    if token:
        client.set_token(token)
    return client


def set_client_config(pubnub: PubNub, **settings: Any) -> None:
    """Set attributes of a built client's configuration, whether it is locked or not.

    A locked configuration (what the client asks users to opt in to) ignores assignments
    with a UserWarning; the agent must still give a client the user passes in its
    instance filter and presence timing, so those are written past the lock.
    """
    config = pubnub.config
    locked = bool(getattr(config, "_locked", False))
    for name, value in settings.items():
        if locked:
            vars(config)[name] = value
        else:
            setattr(config, name, value)
