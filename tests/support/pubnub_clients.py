"""Helpers for driving the official pubnub client against a local server in tests."""

from __future__ import annotations

import queue
from typing import Any

from pubnub.callbacks import SubscribeCallback
from pubnub.enums import PNStatusCategory
from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

from blocks_devnet.realtime.keysets import Keyset

WAIT_SECONDS = 10.0


def make_config(
    origin: str, keyset: Keyset, user_id: str, *, secret: bool = False
) -> PNConfiguration:
    config = PNConfiguration()
    config.origin = origin
    config.ssl = False
    config.publish_key = keyset.publish_key
    config.subscribe_key = keyset.subscribe_key
    config.user_id = user_id
    config.daemon = True
    if secret:
        config.secret_key = keyset.secret_key
    return config


class RecordingListener(SubscribeCallback):  # type: ignore[misc]
    """Puts every callback into queues that tests wait on with timeouts."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.signals: queue.Queue[Any] = queue.Queue()
        self.presence_events: queue.Queue[Any] = queue.Queue()
        self.statuses: queue.Queue[Any] = queue.Queue()
        self.files: queue.Queue[Any] = queue.Queue()

    def status(self, pubnub: PubNub, status: Any) -> None:
        self.statuses.put(status)

    def message(self, pubnub: PubNub, message: Any) -> None:
        self.messages.put(message)

    def signal(self, pubnub: PubNub, signal: Any) -> None:
        self.signals.put(signal)

    def presence(self, pubnub: PubNub, presence: Any) -> None:
        self.presence_events.put(presence)

    def file(self, pubnub: PubNub, file_message: Any) -> None:
        self.files.put(file_message)

    def wait_status(self, category: PNStatusCategory, timeout: float = WAIT_SECONDS) -> Any:
        """Return the first status of ``category``; fail on timeout."""
        while True:
            status = self.statuses.get(timeout=timeout)
            if status.category == category:
                return status


def next_item(q: queue.Queue[Any], timeout: float = WAIT_SECONDS) -> Any:
    return q.get(timeout=timeout)


def assert_empty(q: queue.Queue[Any], timeout: float = 0.3) -> None:
    try:
        item = q.get(timeout=timeout)
    except queue.Empty:
        return
    raise AssertionError(f"unexpected item {item!r}")
