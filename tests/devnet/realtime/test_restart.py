"""A server restarted on the same data directory keeps history and subscribe catch-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pubnub.pubnub import PubNub

from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET
from tests.support.pubnub_clients import RecordingListener, assert_empty, make_config, next_item


@contextmanager
def client(server: RealtimeServer, user_id: str) -> Iterator[PubNub]:
    pubnub = PubNub(make_config(server.origin, OPEN_KEYSET, user_id))
    try:
        yield pubnub
    finally:
        pubnub.stop()


def test_history_and_catch_up_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with (
        RealtimeServer([OPEN_KEYSET], data_dir=data_dir, long_poll_seconds=5) as first,
        client(first, "bob") as bob,
    ):
        tts = [bob.publish().channel("r.log").message(i).sync().result.timetoken for i in range(4)]
        bob.publish().channel("r.log").message("fired").should_store(False).sync()

    with (
        RealtimeServer([OPEN_KEYSET], data_dir=data_dir, long_poll_seconds=5) as second,
        client(second, "alice") as alice,
    ):
        history = alice.history().channel("r.log").include_timetoken(True).sync().result
        assert [(m.entry, m.timetoken) for m in history.messages] == list(
            zip(range(4), tts, strict=True)
        )
        fetched = alice.fetch_messages().channels("r.log").sync().result.channels["r.log"]
        assert [m.message for m in fetched] == [0, 1, 2, 3]

        # An old cursor catches up on what was published before the restart (the
        # unstored message too: it is in the subscribe buffer, just not in history).
        listener = RecordingListener()
        alice.add_listener(listener)
        alice.subscribe().channels(["r.log"]).with_timetoken(tts[0]).execute()
        caught_up = [next_item(listener.messages) for _ in range(4)]
        assert [m.message for m in caught_up] == [1, 2, 3, "fired"]
        assert [m.timetoken for m in caught_up[:3]] == tts[1:]

        # Live delivery continues, with timetokens after the pre-restart ones.
        after = alice.publish().channel("r.log").message("after").sync().result.timetoken
        assert after > tts[-1]
        live = next_item(listener.messages)
        assert (live.message, live.timetoken) == ("after", after)
        assert_empty(listener.messages)
        alice.unsubscribe().channels(["r.log"]).execute()
