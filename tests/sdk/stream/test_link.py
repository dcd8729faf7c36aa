"""StreamLink: the subscribe loops of an agent's readers run on the link's own threads."""

from __future__ import annotations

import queue
import threading
from typing import Any
from urllib.parse import urlsplit

from blocks_network.protocol.cdm import Keyset
from blocks_network.stream.link import StreamLink
from blocks_network.transport.poll_threads import PollThreads
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import PollConnections, SubscriptionSink
from tests.sdk.stub_server import Recorded, stub_server

WAIT = 10.0


def _respond(request: Recorded) -> tuple[int, Any]:
    return 200, {"t": {"t": "200", "r": 1}, "m": [{"c": "stream.a.t-1", "d": {"n": 1}, "i": "w"}]}


def _follow(link: StreamLink) -> threading.Thread:
    """Start a subscription, return the thread its first message arrived on."""
    names: queue.Queue[threading.Thread] = queue.Queue()
    holder: list[Any] = []

    def message(payload: object, tt: int | None, meta: object, publisher: str | None) -> None:
        names.put(threading.current_thread())
        holder[0].stop()

    subscription = link.subscription(
        channel="stream.a.t-1",
        user_id="a-stream-0001",
        token="tok",
        cursor=1000,
        sink=SubscriptionSink(message, lambda: None),
    )
    holder.append(subscription)
    subscription.start()
    return names.get(timeout=WAIT)


def test_an_agent_link_owns_its_poll_threads_and_close_ends_them() -> None:
    with stub_server(_respond) as server:
        endpoint = RealtimeEndpoint(urlsplit(server.url).netloc, ssl=False)
        link = StreamLink(endpoint, Keyset("pub", "sub"), "a")
        thread = _follow(link)
        assert thread.name == "blocks-stream-poll"
        link.close()
        assert not thread.is_alive()
        # A closed link still works: it makes new threads on its next subscription.
        thread = _follow(link)
        assert thread.name == "blocks-stream-poll" and thread.is_alive()
        link.close()
        assert not thread.is_alive()
        assert server.requests[0].path.startswith("/v2/subscribe/sub/stream.a.t-1/0?tt=1000")


def test_a_consumer_link_borrows_the_sessions_poll_threads_and_leaves_them_open() -> None:
    with stub_server(_respond) as server:
        endpoint = RealtimeEndpoint(urlsplit(server.url).netloc, ssl=False)
        threads = PollThreads(thread_name="sessions")
        connections = PollConnections(endpoint)
        link = StreamLink(endpoint, Keyset("pub", "sub"), "u", (threads, connections))
        assert _follow(link).name == "sessions"
        link.close()
        assert threads.size == 1  # still the sessions' (idle) thread
        threads.close()
        connections.close()
