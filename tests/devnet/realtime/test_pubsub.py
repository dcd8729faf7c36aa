"""Publish, fire, signal and subscribe with the official client against a real server."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from pubnub.enums import PNStatusCategory

from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET, PubNubFactory
from tests.support.pubnub_clients import RecordingListener, assert_empty, next_item


def subscribed(
    pubnub_factory: PubNubFactory, user_id: str, channels: list[str], **kw: object
) -> RecordingListener:
    client = pubnub_factory(user_id)
    listener = RecordingListener()
    client.add_listener(listener)
    builder = client.subscribe().channels(channels)
    if kw.get("presence"):
        builder = builder.with_presence()
    builder.execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    return listener


def test_time_returns_one_integer_timetoken(realtime_server: RealtimeServer) -> None:
    with urllib.request.urlopen(f"{realtime_server.url}/time/0", timeout=5) as response:
        body = json.loads(response.read())
    assert isinstance(body, list) and len(body) == 1 and isinstance(body[0], int)
    assert len(str(body[0])) == 17


def test_publish_get_and_post_reach_listener_with_meta_and_publisher(
    pubnub_factory: PubNubFactory,
) -> None:
    listener = subscribed(pubnub_factory, "alice", ["room"])
    bob = pubnub_factory("bob")
    envelope = bob.publish().channel("room").message({"n": 1}).meta({"k": "v"}).sync()
    assert envelope.result.timetoken > 0
    bob.publish().channel("room").message("two/with slash").use_post(True).sync()

    first = next_item(listener.messages)
    assert first.message == {"n": 1}
    assert first.publisher == "bob"
    assert first.user_metadata == {"k": "v"}
    assert first.timetoken == envelope.result.timetoken
    second = next_item(listener.messages)
    assert second.message == "two/with slash"


def test_signal_goes_to_signal_callback(pubnub_factory: PubNubFactory) -> None:
    listener = subscribed(pubnub_factory, "alice", ["room"])
    pubnub_factory("bob").signal().channel("room").message({"typing": True}).sync()
    assert next_item(listener.signals).message == {"typing": True}
    assert_empty(listener.messages)


def test_fire_is_delivered(pubnub_factory: PubNubFactory) -> None:
    listener = subscribed(pubnub_factory, "alice", ["room"])
    pubnub_factory("bob").fire().channel("room").message("fired").sync()
    assert next_item(listener.messages).message == "fired"


def test_filter_expression_on_meta(pubnub_factory: PubNubFactory) -> None:
    client = pubnub_factory("AG-x")
    client.config.filter_expression = "meta.instance == 'AG-x' || meta.broadcast == \"true\""
    listener = RecordingListener()
    client.add_listener(listener)
    client.subscribe().channels(["agent.a.control"]).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    backend = pubnub_factory("backend")
    backend.publish().channel("agent.a.control").message("other").meta({"instance": "AG-y"}).sync()
    backend.publish().channel("agent.a.control").message("mine").meta({"instance": "AG-x"}).sync()
    backend.publish().channel("agent.a.control").message("all").meta({"broadcast": "true"}).sync()
    assert next_item(listener.messages).message == "mine"
    assert next_item(listener.messages).message == "all"
    assert_empty(listener.messages)


def test_filter_expression_on_the_payload(pubnub_factory: PubNubFactory) -> None:
    # The real service reads data.* (the published message's own fields) as well as meta.*.
    client = pubnub_factory("reader")
    client.config.filter_expression = "data.text LIKE 'he*' && data.user[\"role\"] == 'admin'"
    listener = RecordingListener()
    client.add_listener(listener)
    client.subscribe().channels(["chat"]).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    writer = pubnub_factory("writer")
    writer.publish().channel("chat").message({"text": "hello", "user": {"role": "guest"}}).sync()
    writer.publish().channel("chat").message("hello").sync()  # not an object: data.* is missing
    writer.publish().channel("chat").message({"text": "bye", "user": {"role": "admin"}}).sync()
    writer.publish().channel("chat").message({"text": "help", "user": {"role": "admin"}}).sync()
    assert next_item(listener.messages).message == {"text": "help", "user": {"role": "admin"}}
    assert_empty(listener.messages)


def test_catch_up_from_older_cursor(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    first = bob.publish().channel("log").message(0).sync().result.timetoken
    for i in range(1, 5):
        bob.publish().channel("log").message(i).sync()
    alice = pubnub_factory("alice")
    listener = RecordingListener()
    alice.add_listener(listener)
    alice.subscribe().channels(["log"]).with_timetoken(first).execute()
    received = [next_item(listener.messages).message for _ in range(4)]
    assert received == [1, 2, 3, 4]


def test_concurrent_publishers_lose_nothing_and_keep_order(pubnub_factory: PubNubFactory) -> None:
    publishers, per_publisher = 4, 40
    listeners = [subscribed(pubnub_factory, f"sub-{i}", ["busy"]) for i in range(3)]
    clients = [pubnub_factory(f"pub-{i}") for i in range(publishers)]

    def run(index: int) -> None:
        for seq in range(per_publisher):
            clients[index].publish().channel("busy").message({"p": index, "s": seq}).sync()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(publishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for listener in listeners:
        got = [next_item(listener.messages).message for _ in range(publishers * per_publisher)]
        assert_empty(listener.messages)
        for index in range(publishers):
            seqs = [m["s"] for m in got if m["p"] == index]
            assert seqs == list(range(per_publisher))


@pytest.mark.parametrize("size", [31 * 1024, 33 * 1024])
def test_message_size_limit(pubnub_factory: PubNubFactory, size: int) -> None:
    from pubnub.exceptions import PubNubException

    bob = pubnub_factory("bob")
    call = bob.publish().channel("big").message("x" * size).use_post(True)
    if size < 32 * 1024 - 100:
        assert call.sync().result.timetoken > 0
    else:
        with pytest.raises(PubNubException) as info:
            call.sync()
        assert info.value.get_status_code() == 413


def test_open_keyset_is_isolated_from_secure_keyset(realtime_server: RealtimeServer) -> None:
    url = f"{realtime_server.url}/publish/{OPEN_KEYSET.publish_key}/sub-c-unknown/0/ch/0/%22x%22"
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
        assert json.loads(exc.read())["message"] == "Invalid Subscribe Key"
    else:
        raise AssertionError("publish with an unknown subscribe key succeeded")


def test_get_publish_near_the_limit_is_accepted(pubnub_factory: PubNubFactory) -> None:
    # Each "é" is sent as %5Cu00e9 (8 bytes): a ~24 KiB request line, over aiohttp's default.
    listener = subscribed(pubnub_factory, "alice", ["big"])
    text = "é" * 3 * 1024
    pubnub_factory("bob").publish().channel("big").message(text).sync()
    assert next_item(listener.messages).message == text
