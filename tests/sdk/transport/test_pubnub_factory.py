"""``create_pubnub``: every setting made before the client locks its configuration, so the
official client warns about nothing (its "Mutable config" deprecation included)."""

from __future__ import annotations

import warnings

from blocks_network.transport.pubnub_factory import RealtimeEndpoint, create_pubnub


def test_the_client_is_built_locked_and_warns_about_nothing() -> None:
    # Our own filter: the project's pyproject ignores pubnub's DeprecationWarnings.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = create_pubnub(
            subscribe_key="sub-c-1",
            publish_key="pub-c-1",
            user_id="user-1",
            endpoint=RealtimeEndpoint("127.0.0.1:9", ssl=False),
            token="tok",
            presence_timeout=20,
            heartbeat=True,
            unbounded_reconnect=True,
            filter_expression="meta.instance == 'x'",
            subscribe_timeout=60,
            suppress_leave_events=True,
        )
        client.stop()
    assert [str(w.message) for w in caught] == []
    config = client.config
    assert config._locked  # later assignments would be ignored: nothing may rely on them
    assert (config.subscribe_key, config.publish_key, config.user_id) == (
        "sub-c-1",
        "pub-c-1",
        "user-1",
    )
    assert (config.origin, config.ssl, config.daemon) == ("127.0.0.1:9", False, True)
    assert (config.presence_timeout, config.enable_presence_heartbeat) == (20, True)
    assert config.filter_expression == "meta.instance == 'x'"
    assert (config.subscribe_request_timeout, config.suppress_leave_events) == (60, True)
