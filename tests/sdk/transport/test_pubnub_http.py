"""The pooled request handler: the official client works over it, and stop() ends long-polls."""

from __future__ import annotations

import queue
import threading
import time

from pubnub.callbacks import SubscribeCallback
from pubnub.enums import PNStatusCategory

from blocks_devnet.realtime.server import RealtimeServer
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint, create_pubnub
from blocks_network.transport.pubnub_http import PooledRequestHandler, use_pooled_requests
from tests.conftest import OPEN_KEYSET

WAIT = 10.0


class Listener(SubscribeCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.messages: queue.Queue[object] = queue.Queue()
        self.connected = threading.Event()

    def status(self, pubnub: object, status: object) -> None:
        if getattr(status, "category", None) == PNStatusCategory.PNConnectedCategory:
            self.connected.set()

    def message(self, pubnub: object, message: object) -> None:
        self.messages.put(message.message)  # type: ignore[attr-defined]

    def presence(self, pubnub: object, presence: object) -> None:
        pass


def _client(server: RealtimeServer, user: str, http: HttpClient) -> object:
    client = create_pubnub(
        subscribe_key=OPEN_KEYSET.subscribe_key,
        publish_key=OPEN_KEYSET.publish_key,
        user_id=user,
        endpoint=RealtimeEndpoint(server.origin, False),
    )
    return use_pooled_requests(client, http)


def _poll_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "blocks-pubnub-poll"]


def test_publish_subscribe_history_and_time_over_the_pool(realtime_server: RealtimeServer) -> None:
    http = HttpClient()
    sub = _client(realtime_server, "sub", http)
    pub = _client(realtime_server, "pub", http)
    assert isinstance(sub.get_request_handler(), PooledRequestHandler)  # type: ignore[attr-defined]
    listener = Listener()
    sub.add_listener(listener)  # type: ignore[attr-defined]
    sub.subscribe().channels(["room"]).execute()  # type: ignore[attr-defined]
    assert listener.connected.wait(WAIT)
    for i in range(3):
        pub.publish().channel("room").message({"n": i}).use_post(True).sync()  # type: ignore[attr-defined]
    assert [listener.messages.get(timeout=WAIT) for _ in range(3)] == [{"n": i} for i in range(3)]
    history = pub.fetch_messages().channels(["room"]).sync()  # type: ignore[attr-defined]
    assert [m.message for m in history.result.channels["room"]] == [{"n": i} for i in range(3)]
    assert int(pub.time().sync().result) > 0  # type: ignore[attr-defined]
    sub.stop()  # type: ignore[attr-defined]
    pub.stop()  # type: ignore[attr-defined]


def test_stop_aborts_the_long_poll_at_once(realtime_server: RealtimeServer) -> None:
    http = HttpClient()
    before = set(_poll_threads())
    client = _client(realtime_server, "idle", http)
    listener = Listener()
    client.add_listener(listener)  # type: ignore[attr-defined]
    client.subscribe().channels(["quiet"]).execute()  # type: ignore[attr-defined]
    assert listener.connected.wait(WAIT)
    time.sleep(0.2)  # now parked in a long-poll (the server holds it for 5 s)
    [poller] = set(_poll_threads()) - before  # long-polls run on one thread per client
    started = time.monotonic()
    client.stop()  # type: ignore[attr-defined]
    poller.join(2)
    assert not poller.is_alive()
    assert time.monotonic() - started < 2
    # A stopped client can still make ordinary requests (artifact downloads do).
    assert int(client.time().sync().result) > 0  # type: ignore[attr-defined]


def test_send_file_uploads_through_the_pool_not_httpx(realtime_server: RealtimeServer) -> None:
    http = HttpClient()
    client = _client(realtime_server, "uploader", http)
    handler = client.get_request_handler()  # type: ignore[attr-defined]
    data = bytes(range(256)) * 40
    try:
        sent = (
            client.send_file()  # type: ignore[attr-defined]
            .channel("files")
            .file_name("blob.bin")
            .file_object(data)
            .sync()
            .result
        )
        got = (
            client.download_file()  # type: ignore[attr-defined]
            .channel("files")
            .file_id(sent.file_id)
            .file_name("blob.bin")
            .sync()
        )
        assert got.result.data == data
        assert handler._session is None  # the default httpx path was never taken
    finally:
        client.stop()  # type: ignore[attr-defined]
        http.close()
