"""Presence: the tracker on a fake clock, then the official client against a real server."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest
from pubnub.enums import PNStatusCategory
from pubnub.exceptions import PubNubException
from pubnub.pubnub import PubNub

from blocks_devnet.realtime import presence
from blocks_devnet.realtime.errors import RealtimeError
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.message_log import MessageLog
from blocks_devnet.realtime.presence import (
    DEFAULT_HEARTBEAT_SECONDS,
    MIN_HEARTBEAT_SECONDS,
    PresenceTracker,
    parse_channel_states,
)
from blocks_devnet.realtime.server import RealtimeServer
from blocks_devnet.store.database import Database
from tests.conftest import OPEN_KEYSET, SECURE_KEYSET, PubNubFactory
from tests.support.fake_clock import FakeClock
from tests.support.pubnub_clients import RecordingListener, assert_empty, next_item

KEY = OPEN_KEYSET.subscribe_key

# --- the tracker on a fake clock --------------------------------------------------------


class Harness:
    """A tracker over an in-memory message log; reads back the events it published."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.messages = MessageLog(Database(None))
        self.tracker = PresenceTracker(self.messages, clock=self.clock)
        self._seen: dict[str, int] = {}

    def events(self, channel: str = "room") -> list[dict[str, Any]]:
        """Presence events on ``channel`` since the last call."""
        after = self._seen.get(channel, 0)
        found, _ = self.messages.collect(KEY, [channel + "-pnpres"], after, limit=10_000)
        if found:
            self._seen[channel] = found[-1].timetoken
        return [json.loads(entry.envelope)["d"] for entry in found]

    def actions(self, channel: str = "room") -> list[tuple[str, str, int]]:
        return [(e["action"], e["uuid"], e["occupancy"]) for e in self.events(channel)]

    def advance(self, seconds: float) -> int:
        self.clock.now += seconds
        return self.tracker.sweep()


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_join_event_has_the_types_the_client_asserts(harness: Harness) -> None:
    harness.tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], None, None)
    (event,) = harness.events()
    assert set(event) == {"action", "uuid", "timestamp", "occupancy"}
    assert event["action"] == "join" and event["uuid"] == "alice"
    assert type(event["occupancy"]) is int and event["occupancy"] == 1
    assert type(event["timestamp"]) is int and 1_600_000_000 < event["timestamp"] < 10_000_000_000


def test_held_poll_never_times_out_and_clock_restarts_when_it_ends(harness: Harness) -> None:
    handle = harness.tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 10, None)
    harness.events()
    assert harness.advance(1000) == 0
    harness.tracker.subscribe_finished(handle)
    assert harness.advance(9) == 0
    assert harness.advance(2) == 1
    assert harness.actions() == [("timeout", "alice", 0)]
    assert harness.tracker.where_now(KEY, "alice") == []


def test_overlapping_polls_are_counted_per_channel_and_uuid(harness: Harness) -> None:
    old = harness.tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 5, None)
    new = harness.tracker.subscribe_started(OPEN_KEYSET, "alice", ["room", "side"], 5, None)
    assert harness.actions() == [("join", "alice", 1)]  # no second join for the second poll
    harness.tracker.subscribe_finished(old)
    assert harness.advance(60) == 0  # the newer poll still holds "room"
    harness.tracker.subscribe_finished(new)
    assert harness.advance(6) == 2
    assert harness.actions() == [("timeout", "alice", 0)]
    assert harness.actions("side") == [("join", "alice", 1), ("timeout", "alice", 0)]


def test_leave_during_a_stale_poll_is_final(harness: Harness) -> None:
    stale = harness.tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 5, None)
    harness.tracker.subscribe_started(OPEN_KEYSET, "bob", ["room"], 5, None)
    harness.tracker.leave(KEY, "alice", ["room"])
    assert harness.actions() == [("join", "alice", 1), ("join", "bob", 2), ("leave", "alice", 1)]
    harness.tracker.subscribe_finished(stale)
    assert harness.advance(60) == 0
    assert harness.events() == []
    assert harness.tracker.occupants(KEY, "room") == ["bob"]


def test_rejoin_while_a_stale_poll_is_held_keeps_the_new_membership(harness: Harness) -> None:
    stale = harness.tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 5, None)
    harness.tracker.leave(KEY, "alice", ["room"])
    harness.tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 5, None)
    harness.tracker.subscribe_finished(stale)  # must not release the new poll's hold
    assert harness.advance(60) == 0
    assert harness.actions() == [("join", "alice", 1), ("leave", "alice", 0), ("join", "alice", 1)]


def test_poll_gap_runs_only_between_polls(harness: Harness) -> None:
    tracker = harness.tracker
    assert tracker.poll_gap(KEY, "room", "alice") is None  # absent
    tracker.heartbeat(KEY, "alice", ["room"], 60)
    assert tracker.poll_gap(KEY, "room", "alice") is None  # heartbeats only: no signal
    first = tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 60, None)
    second = tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 60, None)
    harness.clock.now += 30
    assert tracker.poll_gap(KEY, "room", "alice") == 0.0
    tracker.subscribe_finished(first)  # another poll still held
    assert tracker.poll_gap(KEY, "room", "alice") == 0.0
    tracker.subscribe_finished(second)
    harness.clock.now += 3
    assert tracker.poll_gap(KEY, "room", "alice") == 3.0
    tracker.subscribe_started(OPEN_KEYSET, "alice", ["room"], 60, None)
    assert tracker.poll_gap(KEY, "room", "alice") == 0.0


def test_heartbeats_refresh_and_a_shorter_value_takes_effect(harness: Harness) -> None:
    harness.tracker.heartbeat(KEY, "alice", ["room"], None)
    assert harness.advance(DEFAULT_HEARTBEAT_SECONDS - 1) == 0
    harness.tracker.heartbeat(KEY, "alice", ["room"], 5)
    assert harness.advance(4) == 0
    assert harness.advance(2) == 1
    assert harness.actions() == [("join", "alice", 1), ("timeout", "alice", 0)]


def test_heartbeat_below_the_minimum_is_raised(harness: Harness) -> None:
    harness.tracker.heartbeat(KEY, "alice", ["room"], 0)
    assert harness.advance(MIN_HEARTBEAT_SECONDS - 0.5) == 0
    assert harness.advance(1) == 1


def test_state_change_events(harness: Harness) -> None:
    harness.tracker.heartbeat(KEY, "alice", ["room"], 30, {"room": {"mood": "ok"}})
    joined, changed = harness.events()
    assert joined["action"] == "join"
    assert changed == {
        **changed,
        "action": "state-change",
        "uuid": "alice",
        "occupancy": 1,
        "data": {"mood": "ok"},
    }
    harness.tracker.heartbeat(KEY, "alice", ["room"], 30, {"room": {"mood": "ok"}})
    assert harness.events() == []  # heartbeats repeat the client's state; only changes count
    harness.tracker.set_state(KEY, "alice", ["room"], {"mood": "ok"})
    assert [e["action"] for e in harness.events()] == [
        "state-change"
    ]  # explicit calls always announce
    assert harness.tracker.get_state(KEY, "alice", "room") == {"mood": "ok"}
    harness.tracker.leave(KEY, "alice", ["room"])
    assert harness.tracker.get_state(KEY, "alice", "room") == {}


def test_states_of_absent_uuids_are_bounded_and_present_ones_stay(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "MAX_ABSENT_STATES", 3)
    harness.tracker.heartbeat(KEY, "alice", ["room"], 30, {"room": {"here": True}})
    for n in range(4):  # set, never joined
        harness.tracker.set_state(KEY, f"ghost{n}", ["room"], {"n": n})
    assert harness.tracker.get_state(KEY, "alice", "room") == {"here": True}
    assert harness.tracker.get_state(KEY, "ghost0", "room") == {}
    assert harness.tracker.get_state(KEY, "ghost1", "room") == {}
    assert harness.tracker.get_state(KEY, "ghost3", "room") == {"n": 3}


def test_malformed_channel_state_is_a_400() -> None:
    for bad in (["x"], {"room": 5}, "text"):
        with pytest.raises(RealtimeError) as info:
            parse_channel_states(bad, ["room"])
        assert info.value.status == 400
    assert parse_channel_states({"room": {"a": 1}, "other": {}}, ["room"]) == {"room": {"a": 1}}


def test_keysets_are_isolated(harness: Harness) -> None:
    other = Keyset.generate("other")
    harness.tracker.subscribe_started(other, "alice", ["room"], None, None)
    assert harness.tracker.occupants(KEY, "room") == []
    assert harness.tracker.occupied_channels(other.subscribe_key) == ["room"]


def test_many_polls_keep_at_most_one_pending_timeout_per_member(harness: Harness) -> None:
    uuids = [f"u{i}" for i in range(100)]
    for _ in range(20):
        handles = [
            harness.tracker.subscribe_started(OPEN_KEYSET, u, ["busy"], 20, None) for u in uuids
        ]
        for handle in handles:
            harness.tracker.subscribe_finished(handle)
        harness.advance(1)
    assert len(harness.tracker._heap) <= len(uuids)  # private: the cost model is the point here
    assert len(harness.tracker.occupants(KEY, "busy")) == 100


# --- the official client against a real server ------------------------------------------

#: Presence timeout for tests that watch a client go silent (raised to the server minimum).
SHORT_TIMEOUT = MIN_HEARTBEAT_SECONDS


def watch(
    pubnub_factory: PubNubFactory, user_id: str, channels: list[str]
) -> tuple[PubNub, RecordingListener]:
    """A client subscribed with presence; its own join is consumed."""
    client = pubnub_factory(user_id)
    listener = RecordingListener()
    client.add_listener(listener)
    client.subscribe().channels(channels).with_presence().execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    for _ in channels:
        assert next_presence(listener, user_id).event == "join"
    return client, listener


def next_presence(listener: RecordingListener, uuid: str, timeout: float = 10.0) -> Any:
    """The next presence event about ``uuid`` (others' events are skipped)."""
    while True:
        event = next_item(listener.presence_events, timeout)
        if event.uuid == uuid:
            return event


def subscribed_client(
    pubnub_factory: PubNubFactory,
    user_id: str,
    channels: list[str],
    *,
    presence_timeout: int | None = None,
) -> PubNub:
    client = pubnub_factory(user_id)
    if presence_timeout is not None:
        client.config.set_presence_timeout(presence_timeout)
    listener = RecordingListener()
    client.add_listener(listener)
    client.subscribe().channels(channels).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    return client


def get(server: RealtimeServer, path: str) -> tuple[int, Any]:
    """A raw GET; returns ``(status, decoded JSON body)`` for success and errors alike."""
    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_join_and_leave_events_reach_the_client(pubnub_factory: PubNubFactory) -> None:
    _, listener = watch(pubnub_factory, "alice", ["room"])
    bob = subscribed_client(pubnub_factory, "bob", ["room"])
    joined = next_presence(listener, "bob")
    assert (joined.event, joined.channel, joined.occupancy) == ("join", "room", 2)
    assert isinstance(joined.timestamp, int) and isinstance(joined.timetoken, int)

    bob.unsubscribe().channels(["room"]).execute()
    left = next_presence(listener, "bob")
    assert (left.event, left.occupancy) == ("leave", 1)
    # The event thread survived every presence payload: messages still arrive.
    pubnub_factory("carol").publish().channel("room").message("still here").sync()
    assert next_item(listener.messages).message == "still here"


def test_timeout_when_a_client_stops_polling(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory
) -> None:
    _, listener = watch(pubnub_factory, "alice", ["room"])
    # One poll that answers at once (tt=0) and never a second one: a client that went away.
    status, _ = get(
        realtime_server, f"/v2/subscribe/{KEY}/room/0?tt=0&uuid=ghost&heartbeat={SHORT_TIMEOUT}"
    )
    assert status == 200
    assert next_presence(listener, "ghost").event == "join"
    timed_out = next_presence(listener, "ghost", timeout=SHORT_TIMEOUT + 5)
    assert (timed_out.event, timed_out.occupancy) == ("timeout", 1)


def test_a_held_poll_keeps_a_short_timeout_client_present(pubnub_factory: PubNubFactory) -> None:
    _, listener = watch(pubnub_factory, "alice", ["room"])
    subscribed_client(pubnub_factory, "dave", ["room"], presence_timeout=SHORT_TIMEOUT)
    assert next_presence(listener, "dave").event == "join"
    # Long-polls are held 5 s in tests; a timeout would show within SHORT_TIMEOUT + 1 s.
    assert_empty(listener.presence_events, timeout=SHORT_TIMEOUT + 2)


def test_presence_heartbeats_from_the_client_are_accepted(pubnub_factory: PubNubFactory) -> None:
    client = pubnub_factory("hb")
    client.config.set_presence_timeout(4)  # heartbeat every 4/2 - 1 = 1 s
    client.config.enable_presence_heartbeat = True
    listener = RecordingListener()
    client.add_listener(listener)
    client.subscribe().channels(["room"]).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    client.set_state().channels(["room"]).state({"role": "agent"}).sync()
    # Heartbeats carry that state every second; failures would be announced as statuses.
    assert_empty(listener.statuses, timeout=3)
    result = pubnub_factory("x").here_now().channels(["room"]).include_state(True).sync().result
    (occupant,) = result.channels[0].occupants
    assert (occupant.uuid, occupant.state) == ("hb", {"role": "agent"})


def test_heartbeat_endpoint_joins_and_times_out(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory
) -> None:
    _, listener = watch(pubnub_factory, "alice", ["room"])
    state = quote(json.dumps({"room": {"busy": True}}))
    path = f"/v2/presence/sub-key/{KEY}/channel/room/heartbeat?heartbeat={SHORT_TIMEOUT}&uuid=hb&state={state}"
    assert get(realtime_server, path) == (
        200,
        {"status": 200, "message": "OK", "service": "Presence"},
    )
    assert next_presence(listener, "hb").event == "join"
    changed = next_presence(listener, "hb")
    assert (changed.event, changed.state) == ("state-change", {"busy": True})
    assert next_presence(listener, "hb", timeout=SHORT_TIMEOUT + 5).event == "timeout"


def test_set_state_announces_and_get_state_reads_back(pubnub_factory: PubNubFactory) -> None:
    alice, _ = watch(pubnub_factory, "alice", ["room", "hall"])
    _, bob_listener = watch(pubnub_factory, "bob", ["room"])
    result = alice.set_state().channels(["room"]).state({"mood": "ok", "n": [1, 2]}).sync().result
    assert result.state == {"mood": "ok", "n": [1, 2]}
    event = next_presence(bob_listener, "alice")
    assert (event.event, event.channel, event.state, event.occupancy) == (
        "state-change",
        "room",
        {"mood": "ok", "n": [1, 2]},
        2,
    )
    one = alice.get_state().channels(["room"]).sync().result
    assert one.channels == {"room": {"mood": "ok", "n": [1, 2]}}
    many = pubnub_factory("bob").get_state().channels(["room", "hall"]).uuid("alice").sync().result
    assert many.channels == {"room": {"mood": "ok", "n": [1, 2]}, "hall": {}}


def test_get_state_answers_carry_the_real_keys(realtime_server: RealtimeServer) -> None:
    # The real service's answers (pubnub/python tests/integrational/fixtures/native_sync/
    # state/state_of_single_channel.yaml and state_of_multiple_channels.yaml).
    key = OPEN_KEYSET.subscribe_key
    state = quote(json.dumps({"n": 5}))
    get(realtime_server, f"/v2/presence/sub-key/{key}/channel/c1,c2/uuid/u/data?state={state}")
    status, one = get(realtime_server, f"/v2/presence/sub-key/{key}/channel/c1/uuid/u")
    assert status == 200
    assert one == {
        "status": 200,
        "message": "OK",
        "payload": {"n": 5},
        "uuid": "u",
        "channel": "c1",
        "service": "Presence",
    }
    status, many = get(realtime_server, f"/v2/presence/sub-key/{key}/channel/c1,c2/uuid/u")
    assert status == 200
    assert many == {
        "status": 200,
        "message": "OK",
        "payload": {"channels": {"c1": {"n": 5}, "c2": {"n": 5}}},
        "uuid": "u",
        "service": "Presence",
    }


def test_here_now_single_multi_and_global(pubnub_factory: PubNubFactory) -> None:
    alice, _ = watch(pubnub_factory, "alice", ["room", "hall"])
    watch(pubnub_factory, "bob", ["room"])
    alice.set_state().channels(["room"]).state({"mood": "ok"}).sync()
    reader = pubnub_factory("reader")

    single = (
        reader.here_now().channels(["room"]).include_uuids(True).include_state(True).sync().result
    )
    assert (single.total_channels, single.total_occupancy) == (1, 2)
    occupants = {o.uuid: o.state for o in single.channels[0].occupants}
    assert occupants == {"alice": {"mood": "ok"}, "bob": None}

    multi = reader.here_now().channels(["room", "hall", "empty"]).sync().result
    assert (multi.total_channels, multi.total_occupancy) == (2, 3)
    assert {c.channel_name: sorted(o.uuid for o in c.occupants) for c in multi.channels} == {
        "room": ["alice", "bob"],
        "hall": ["alice"],
    }

    counts = reader.here_now().channels(["room", "hall"]).include_uuids(False).sync().result
    assert {c.channel_name: (c.occupancy, c.occupants) for c in counts.channels} == {
        "room": (2, None),
        "hall": (1, None),
    }

    everywhere = reader.here_now().sync().result
    assert {c.channel_name: c.occupancy for c in everywhere.channels} == {"room": 2, "hall": 1}

    assert sorted(reader.where_now().uuid("alice").sync().result.channels) == ["hall", "room"]
    assert reader.where_now().uuid("nobody").sync().result.channels == []


def test_here_now_wire_shapes(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory
) -> None:
    watch(pubnub_factory, "alice", ["room"])
    watch(pubnub_factory, "bob", ["room"])
    base = f"/v2/presence/sub-key/{KEY}/channel"
    status, body = get(realtime_server, f"{base}/room?limit=1000&disable_uuids=1")
    assert (status, body) == (
        200,
        {"status": 200, "message": "OK", "occupancy": 2, "service": "Presence"},
    )
    _, body = get(realtime_server, f"{base}/room?limit=1&offset=1&state=1")
    assert (body["occupancy"], body["uuids"]) == (2, [{"uuid": "bob"}])
    _, body = get(realtime_server, f"{base}/room,nobody-here?uuid=x")
    assert body["payload"] == {
        "channels": {"room": {"occupancy": 2, "uuids": ["alice", "bob"]}},
        "total_channels": 1,
        "total_occupancy": 2,
    }
    _, body = get(realtime_server, f"{base}/,?channel-group=some-group")
    assert body["payload"] == {"channels": {}, "total_channels": 0, "total_occupancy": 0}


def test_overlapping_polls_from_a_changing_channel_set(pubnub_factory: PubNubFactory) -> None:
    _, listener = watch(pubnub_factory, "alice", ["room"])
    eve = subscribed_client(pubnub_factory, "eve", ["room"], presence_timeout=SHORT_TIMEOUT)
    assert next_presence(listener, "eve").event == "join"
    # The client restarts its loop without aborting the held poll: two polls hold "room".
    eve.subscribe().channels(["side"]).execute()
    pubnub_factory("pub").publish().channel("side").message("wake the newer poll").sync()
    assert_empty(listener.presence_events, timeout=SHORT_TIMEOUT + 2)  # no second join, no timeout


def test_leave_then_stale_poll_does_not_bring_the_uuid_back(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory
) -> None:
    # Raw HTTP plays eve: the official client's heartbeat timer may re-announce the old
    # channel set right after a leave, which would be a real (client-made) rejoin.
    _, listener = watch(pubnub_factory, "alice", ["room"])
    polls = f"/v2/subscribe/{KEY}/room,side/0?uuid=eve&heartbeat={SHORT_TIMEOUT}"
    _, first = get(realtime_server, polls + "&tt=0")
    assert next_presence(listener, "eve").event == "join"
    stale: list[Any] = []
    poll = threading.Thread(
        target=lambda: stale.append(get(realtime_server, f"{polls}&tt={first['t']['t']}&tr=1"))
    )
    poll.start()
    # The held poll is parked on "side" (only eve listens there) before the leave is sent;
    # a poll arriving after the leave would be a fresh subscribe, i.e. a real rejoin.
    wait_for(lambda: realtime_server.call(lambda: parked_on(realtime_server, "side")))
    get(realtime_server, f"/v2/presence/sub-key/{KEY}/channel/room/leave?uuid=eve")
    assert next_presence(listener, "eve").event == "leave"
    pubnub_factory("pub").publish().channel("side").message("end the stale poll").sync()
    poll.join(10)
    assert stale and stale[0][0] == 200
    assert_empty(listener.presence_events, timeout=SHORT_TIMEOUT + 2)
    _, body = get(realtime_server, f"/v2/presence/sub-key/{KEY}/channel/room")
    assert body["uuids"] == ["alice"]


def parked_on(server: RealtimeServer, channel: str) -> bool:
    assert server.service is not None
    log = server.service.messages._logs.get((KEY, channel))
    return bool(log is not None and log.waiters)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _bad_state(value: Any) -> str:
    return quote(json.dumps(value))


BASE = f"/v2/presence/sub-key/{KEY}"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{BASE}/channel/room/heartbeat?uuid=u&heartbeat=abc", 400),
        (f"{BASE}/channel/room/heartbeat?uuid=u&heartbeat=-1", 400),
        (f"{BASE}/channel/room/heartbeat?uuid=u&heartbeat=99999999", 400),
        (f"{BASE}/channel/room/heartbeat?uuid=u&state=%7Bnot-json", 400),
        (f"{BASE}/channel/room/heartbeat?uuid=u&state={_bad_state([1])}", 400),
        (f"{BASE}/channel/room/heartbeat?uuid=u&state={_bad_state({'room': 5})}", 400),
        (f"{BASE}/channel/room/heartbeat?heartbeat=10", 400),
        (f"{BASE}/channel/,/leave?uuid=u", 400),
        (f"{BASE}/channel/room/uuid/u/data?uuid=u", 400),
        (f"{BASE}/channel/room/uuid/u/data?uuid=u&state=%5B1%5D", 400),
        (f"{BASE}/channel/room/uuid/u/data?uuid=u&state=nope", 400),
        (f"{BASE}/channel/,/uuid/u/data?uuid=u&state=%7B%7D&channel-group=g", 400),
        (f"{BASE}/channel/room?limit=ten", 400),
        (f"{BASE}/channel/room?offset=-3", 400),
        (f"{BASE}/channel/room/uuid/%20x/data/extra", 404),
        (f"{BASE}/nonsense", 404),
        ("/v2/presence/sub-key/sub-c-unknown/channel/room", 400),
        (f"/v2/subscribe/{KEY}/room/0?tt=0&uuid=u&state={_bad_state({'room': 'x'})}", 400),
    ],
)
def test_bad_input_is_a_json_error_and_the_server_keeps_serving(
    realtime_server: RealtimeServer, path: str, status: int
) -> None:
    got, body = get(realtime_server, path)
    assert got == status
    assert body["status"] == status and body["error"] is True and isinstance(body["message"], str)
    assert get(realtime_server, f"{BASE}/channel/room")[0] == 200


def test_unknown_subscribe_key_message(realtime_server: RealtimeServer) -> None:
    _, body = get(realtime_server, "/v2/presence/sub-key/sub-c-unknown/uuid/u")
    assert body["message"] == "Invalid Subscribe Key"


def test_access_control_on_a_secure_keyset(pubnub_factory: PubNubFactory) -> None:
    anonymous = pubnub_factory("anon", SECURE_KEYSET)
    for call in (
        anonymous.here_now().channels(["room"]),
        anonymous.here_now(),
        anonymous.where_now(),
        anonymous.set_state().channels(["room"]).state({"a": 1}),
    ):
        with pytest.raises(PubNubException) as info:
            call.sync()
        assert info.value.get_status_code() == 403
    server_client = pubnub_factory("server", SECURE_KEYSET, secret=True)
    assert server_client.here_now().channels(["room"]).sync().result.total_occupancy == 0
    assert server_client.where_now().sync().result.channels == []
    assert server_client.set_state().channels(["room"]).state({"a": 1}).sync().result.state == {
        "a": 1
    }


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "aiohttp"])
def test_a_held_poll_whose_connection_closes_ends_at_once(tmp_path: Any, fast_path: bool) -> None:
    """A killed subscriber's held poll ends when its connection closes, on either path,
    so the gap since its last poll starts then (its presence itself stays until timeout)."""
    with RealtimeServer([OPEN_KEYSET], long_poll_seconds=60, fast_path=fast_path) as server:

        def gap() -> Any:
            return server.call(lambda: server.service.presence.poll_gap(KEY, "room", "ghost"))  # type: ignore[union-attr]

        sock = socket.create_connection((server.host, server.port), timeout=10)
        try:
            path = f"/v2/subscribe/{KEY}/room/0?tt=1&uuid=ghost"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            wait_for(lambda: gap() == 0.0)
        finally:
            sock.close()
        wait_for(lambda: (gap() or 0.0) > 0.0)
        assert server.call(lambda: server.service.presence.occupants(KEY, "room")) == ["ghost"]  # type: ignore[union-attr]
