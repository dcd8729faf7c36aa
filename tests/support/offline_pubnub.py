"""An official PubNub client that never touches the network, for parse_token checks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub


@contextmanager
def offline_pubnub(secret_key: str) -> Iterator[PubNub]:
    """A client with test keys and ``secret_key``; subscribe is off, so no worker thread."""
    config = PNConfiguration()
    config.publish_key = "pub-c-test"
    config.subscribe_key = "sub-c-test"
    config.secret_key = secret_key
    config.user_id = "server"
    config.enable_subscribe = False
    client = PubNub(config)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):  # stop() complains when subscribe is disabled
            client.stop()
