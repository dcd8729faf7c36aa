"""Message persistence with the official client: history, fetch_messages, delete, counts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest
from pubnub.exceptions import PubNubException
from pubnub.pubnub import PubNub

from blocks_devnet.realtime.history import TimeSpan
from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET, SECURE_KEYSET, PubNubFactory

SUB = OPEN_KEYSET.subscribe_key


def publish_all(client: PubNub, channel: str, messages: list[Any], **meta: Any) -> list[int]:
    """Publish each message (stored) and return the timetokens in order."""
    timetokens = []
    for message in messages:
        call = client.publish().channel(channel).message(message)
        if meta:
            call = call.meta(meta)
        timetokens.append(call.sync().result.timetoken)
    return timetokens


def http(server: RealtimeServer, path: str, method: str = "GET") -> tuple[int, Any]:
    """A raw request; returns ``(status, parsed JSON body)`` for success and errors alike."""
    request = urllib.request.Request(server.url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# --- the range rule (pure) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "selected"),
    [
        (None, None, [1, 2, 3, 4, 5]),
        (4, None, [1, 2, 3]),  # start is exclusive
        (None, 4, [4, 5]),  # end is inclusive
        (5, 2, [2, 3, 4]),
        (2, 5, [3, 4, 5]),  # either order: end inclusive, start exclusive
        (4, 3, [3]),
        (3, 3, []),
    ],
)
def test_time_span_follows_pubnub_range_rule(
    start: int | None, end: int | None, selected: list[int]
) -> None:
    span = TimeSpan.between(start, end)
    inside = [
        tt
        for tt in range(1, 6)
        if (span.low is None or tt >= span.low) and (span.high is None or tt < span.high)
    ]
    assert inside == selected


# --- history v2 -------------------------------------------------------------------------


def test_history_lists_oldest_first_with_timetokens_and_meta(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    tts = publish_all(bob, "h.meta", ["a", {"b": 2}], k="v")
    tts += publish_all(bob, "h.meta", ["no-meta"])

    result = (
        bob.history().channel("h.meta").include_timetoken(True).include_meta(True).sync().result
    )
    assert [m.entry for m in result.messages] == ["a", {"b": 2}, "no-meta"]
    assert [m.timetoken for m in result.messages] == tts
    assert [m.meta for m in result.messages] == [{"k": "v"}, {"k": "v"}, None]
    assert (result.start_timetoken, result.end_timetoken) == (tts[0], tts[-1])

    bare = bob.history().channel("h.meta").sync().result
    assert [m.entry for m in bare.messages] == ["a", {"b": 2}, "no-meta"]
    assert all(m.timetoken is None for m in bare.messages)


def test_history_count_reverse_start_and_end(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    tts = publish_all(bob, "h.range", list(range(6)))

    def entries(**kw: Any) -> list[Any]:
        call = bob.history().channel("h.range")
        for name, value in kw.items():
            call = getattr(call, name)(value)
        return [m.entry for m in call.sync().result.messages]

    assert entries(count=2) == [4, 5]
    assert entries(count=2, reverse=True) == [0, 1]
    assert entries(start=tts[3]) == [0, 1, 2]
    assert entries(start=tts[3], count=2) == [1, 2]
    assert entries(end=tts[3]) == [3, 4, 5]
    assert entries(start=tts[4], end=tts[1]) == [1, 2, 3]
    assert entries(start=tts[4], end=tts[1], reverse=True, count=1) == [1]


def test_history_of_empty_channel(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    result = pubnub_factory("bob").history().channel("h.empty").count(5).sync().result
    assert result.messages == []
    assert (result.start_timetoken, result.end_timetoken) == (0, 0)
    assert http(realtime_server, f"/v2/history/sub-key/{SUB}/channel/h.empty") == (200, [[], 0, 0])


def test_only_stored_messages_enter_history(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    bob.publish().channel("h.store").message("kept").sync()
    bob.publish().channel("h.store").message("unstored").should_store(False).sync()
    bob.fire().channel("h.store").message("fired").sync()
    bob.signal().channel("h.store").message("typing").sync()
    bob.publish().channel("h.store").message("kept-too").should_store(True).sync()

    history = bob.history().channel("h.store").sync().result
    assert [m.entry for m in history.messages] == ["kept", "kept-too"]
    fetched = bob.fetch_messages().channels("h.store").sync().result
    assert [m.message for m in fetched.channels["h.store"]] == ["kept", "kept-too"]


def test_expired_messages_disappear(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    bob = pubnub_factory("bob")
    short = bob.publish().channel("h.ttl").message("short").ttl(1).sync().result.timetoken
    bob.publish().channel("h.ttl").message("long").ttl(24).sync()
    bob.publish().channel("h.ttl").message("forever").sync()
    assert len(bob.history().channel("h.ttl").sync().result.messages) == 3

    service = realtime_server.service
    assert service is not None
    # Age the one-hour message past its expiry instead of waiting an hour.
    realtime_server.call(
        lambda: service.db.execute(
            "UPDATE messages SET expires_at=? WHERE channel='h.ttl' AND timetoken=?",
            (short - 1, short),
        )
    )
    assert [m.entry for m in bob.history().channel("h.ttl").sync().result.messages] == [
        "long",
        "forever",
    ]
    fetched = bob.fetch_messages().channels("h.ttl").sync().result.channels["h.ttl"]
    assert [m.message for m in fetched] == ["long", "forever"]
    counts = bob.message_counts().channel("h.ttl").channel_timetokens([short - 10]).sync()
    assert counts.result.channels == {"h.ttl": 2}


# --- fetch_messages v3 ------------------------------------------------------------------


def test_fetch_one_channel_with_meta_uuid_and_message_type(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    tts = publish_all(bob, "f.one", [{"n": 1}], who="bob")
    tts += publish_all(pubnub_factory("carol"), "f.one", ["plain"])

    result = (
        bob.fetch_messages()
        .channels("f.one")
        .include_meta(True)
        .include_uuid(True)
        .include_message_type(True)
        .sync()
        .result
    )
    items = result.channels["f.one"]
    assert [m.message for m in items] == [{"n": 1}, "plain"]
    assert [int(m.timetoken) for m in items] == tts
    assert [m.uuid for m in items] == ["bob", "carol"]
    assert [m.meta for m in items] == [{"who": "bob"}, None]
    assert [m.message_type for m in items] == [None, None]

    lean = (
        bob.fetch_messages()
        .channels("f.one")
        .include_uuid(False)
        .include_message_type(False)
        .sync()
        .result.channels["f.one"]
    )
    assert not hasattr(lean[0], "uuid") and not hasattr(lean[0], "message_type")
    assert lean[0].meta is None


def test_fetch_many_channels_defaults_to_25_each(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    many = publish_all(bob, "f.many.a", list(range(30)))
    publish_all(bob, "f.many.b", ["x", "y"])

    channels = bob.fetch_messages().channels(["f.many.a", "f.many.b", "f.many.none"]).sync()
    result = channels.result.channels
    assert [m.message for m in result["f.many.a"]] == list(range(5, 30))
    assert [int(m.timetoken) for m in result["f.many.a"]] == many[5:]
    assert [m.message for m in result["f.many.b"]] == ["x", "y"]
    assert "f.many.none" not in result

    page = bob.fetch_messages().channels(["f.many.a", "f.many.b"]).count(3).sync()
    assert [m.message for m in page.result.channels["f.many.a"]] == [27, 28, 29]


def test_paging_250_messages_newest_first_is_exact(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    tts = publish_all(bob, "f.pages", list(range(250)))

    collected: list[tuple[int, Any]] = []
    sizes = []
    start: int | None = None
    while True:
        call = bob.fetch_messages().channels("f.pages").count(100)
        if start is not None:
            call = call.start(start)
        page = call.sync().result.channels.get("f.pages", [])
        sizes.append(len(page))
        collected = [(int(m.timetoken), m.message) for m in page] + collected
        if len(page) < 100:
            break
        start = int(page[0].timetoken)

    assert sizes == [100, 100, 50]
    assert collected == list(zip(tts, range(250), strict=True))


def test_fetch_with_actions_adds_actions_and_more(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    bob = pubnub_factory("bob")
    tts = publish_all(bob, "f.actions", list(range(30)))

    result = bob.fetch_messages().channels("f.actions").include_message_actions(True).sync().result
    items = result.channels["f.actions"]
    assert [m.message for m in items] == list(range(5, 30))
    assert all(m.actions == {} for m in items)

    status, body = http(
        realtime_server, f"/v3/history-with-actions/sub-key/{SUB}/channel/f.actions"
    )
    assert status == 200
    assert body["more"]["start"] == str(tts[5])
    assert body["more"]["max"] == 25
    status, rest = http(realtime_server, body["more"]["url"])
    assert [m["message"] for m in rest["channels"]["f.actions"]] == list(range(5))
    assert "more" not in rest


def test_file_messages_report_message_type_4(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    service = realtime_server.service
    assert service is not None
    file_message = {"message": "hi", "file": {"id": "f1", "name": "a.txt"}}
    realtime_server.call(
        lambda: service.messages.append(
            subscribe_key=SUB,
            channel="f.file",
            publisher="bob",
            message=file_message,
            message_json=json.dumps(file_message),
            message_type=4,
        )
    )
    items = (
        pubnub_factory("bob")
        .fetch_messages()
        .channels("f.file")
        .include_message_type(True)
        .sync()
        .result.channels["f.file"]
    )
    assert [(m.message, m.message_type) for m in items] == [(file_message, 4)]


# --- delete and counts ------------------------------------------------------------------


def test_delete_messages_range_then_all(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    tts = publish_all(bob, "d.ch", list(range(5)))

    # start exclusive, end inclusive: removes messages 2 and 3.
    bob.delete_messages().channel("d.ch").start(tts[1]).end(tts[3]).sync()
    assert [m.entry for m in bob.history().channel("d.ch").sync().result.messages] == [0, 1, 4]
    # The documented single-message form: end = tt, start = tt + 1.
    bob.delete_messages().channel("d.ch").start(tts[4] + 1).end(tts[4]).sync()
    assert [m.entry for m in bob.history().channel("d.ch").sync().result.messages] == [0, 1]
    bob.delete_messages().channel("d.ch").sync()
    assert bob.history().channel("d.ch").sync().result.messages == []


def test_message_counts_single_and_per_channel(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    a = publish_all(bob, "c.a", list(range(4)))
    b = publish_all(bob, "c.b", list(range(2)))

    single = bob.message_counts().channel("c.a").channel_timetokens([a[0]]).sync()
    assert single.result.channels == {"c.a": 3}
    both = (
        bob.message_counts()
        .channel(["c.a", "c.b", "c.none"])
        .channel_timetokens([a[1], b[0] - 1, 0])
        .sync()
    )
    assert both.result.channels == {"c.a": 2, "c.b": 2, "c.none": 0}


# --- access -----------------------------------------------------------------------------


def test_secure_keyset_needs_read_and_delete_rights(pubnub_factory: PubNubFactory) -> None:
    admin = pubnub_factory("admin", SECURE_KEYSET, secret=True)
    admin.publish().channel("s.ch").message("secret").sync()
    anonymous = pubnub_factory("anon", SECURE_KEYSET)

    calls = [
        lambda: anonymous.history().channel("s.ch").sync(),
        lambda: anonymous.fetch_messages().channels("s.ch").sync(),
        lambda: anonymous.message_counts().channel("s.ch").channel_timetokens([0]).sync(),
        lambda: anonymous.delete_messages().channel("s.ch").sync(),
    ]
    for call in calls:
        with pytest.raises(PubNubException) as info:
            call()
        assert info.value.get_status_code() == 403

    assert [m.entry for m in admin.history().channel("s.ch").sync().result.messages] == ["secret"]
    admin.delete_messages().channel("s.ch").sync()
    assert admin.fetch_messages().channels("s.ch").sync().result.channels == {}


# --- garbage input ----------------------------------------------------------------------

V2 = f"/v2/history/sub-key/{SUB}/channel/g.ch"
V3 = f"/v3/history/sub-key/{SUB}/channel/g.ch"
ACTIONS = f"/v3/history-with-actions/sub-key/{SUB}/channel/g.ch"
COUNTS = f"/v3/history/sub-key/{SUB}/message-counts/g.ch"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", V2 + "?count=abc", 400),
        ("GET", V2 + "?count=1e5", 400),
        ("GET", V2 + "?count=" + "9" * 40, 400),
        ("GET", V2 + "?start=-1", 400),
        ("GET", V2 + "?start=abc", 400),
        ("GET", V2 + "?end=1.5", 400),
        ("GET", V2 + "?start=" + "9" * 19, 400),
        ("GET", V2 + "?start=1_000", 400),
        ("GET", V2 + "?start=%D9%A3", 400),
        ("GET", "/v2/history/sub-key/sub-c-nope/channel/g.ch", 400),
        ("GET", f"/v2/history/sub-key/{SUB}/channel/", 404),
        ("GET", f"/v2/history/sub-key/{SUB}/channel/" + "x" * 3000, 400),
        ("GET", f"/v2/history/sub-key/{SUB}/bogus/g.ch", 404),
        ("GET", f"/v2/history/sub-key/{SUB}/channel/g.ch/extra", 404),
        ("GET", "/v2/history/", 404),
        ("GET", V3 + "?max=x", 400),
        ("GET", V3 + "?end=" + "1" * 25, 400),
        ("GET", f"/v3/history/sub-key/{SUB}/channel/,", 400),
        ("GET", f"/v3/history/sub-key/{SUB}/channel/" + ",".join(f"c{i}" for i in range(501)), 400),
        ("GET", "/v3/history/sub-key/sub-c-nope/channel/g.ch", 400),
        ("GET", f"/v3/history-with-actions/sub-key/{SUB}/channel/a,b", 400),
        ("GET", ACTIONS + "?start=x", 400),
        ("DELETE", V3 + "?start=abc", 400),
        ("DELETE", "/v3/history/sub-key/sub-c-nope/channel/g.ch", 400),
        ("DELETE", COUNTS + "?timetoken=1", 404),
        ("GET", COUNTS, 400),
        ("GET", COUNTS + "?timetoken=abc", 400),
        ("GET", COUNTS + "?timetoken=1&channelsTimetoken=1", 400),
        ("GET", f"/v3/history/sub-key/{SUB}/message-counts/a,b,c?channelsTimetoken=1,2", 400),
        ("GET", f"/v3/history/sub-key/{SUB}/message-counts/,?timetoken=1", 400),
        ("PUT", V3, 405),
    ],
)
def test_garbage_is_a_4xx_json_answer(
    realtime_server: RealtimeServer, method: str, path: str, status: int
) -> None:
    got, body = http(realtime_server, path, method)
    assert got == status, body
    assert isinstance(body, dict) and body.get("error") is True
    # The server still serves after the bad request.
    assert http(realtime_server, V2) == (200, [[], 0, 0])


def test_out_of_range_counts_are_clamped(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    publish_all(pubnub_factory("bob"), "g.clamp", list(range(120)))
    base = f"/sub-key/{SUB}/channel/g.clamp"
    for query in ("?count=1000000", "?count=101", "?count=0", "?count=-5"):
        status, body = http(realtime_server, "/v2/history" + base + query)
        assert status == 200 and body[0] == list(range(20, 120))
    status, body = http(realtime_server, "/v3/history" + base + "?max=1000000")
    assert status == 200 and len(body["channels"]["g.clamp"]) == 100
    status, body = http(realtime_server, "/v3/history" + f"/sub-key/{SUB}/channel/g.clamp,x?max=99")
    assert status == 200 and len(body["channels"]["g.clamp"]) == 25


def test_channel_names_with_slashes_and_commas(pubnub_factory: PubNubFactory) -> None:
    bob = pubnub_factory("bob")
    odd = "room/with,comma and space"
    publish_all(bob, odd, ["odd"])
    assert [m.entry for m in bob.history().channel(odd).sync().result.messages] == ["odd"]
    fetched = bob.fetch_messages().channels([odd, "plain"]).sync().result.channels
    assert [m.message for m in fetched[odd]] == ["odd"]
    assert quote(odd, safe="") not in fetched


def test_fetch_items_carry_only_what_was_asked_for(
    pubnub_factory: PubNubFactory, realtime_server: RealtimeServer
) -> None:
    # The real service's recorded answers: message and timetoken only, unless include_*=true;
    # no "actions" on items that have none, and no "more" without an older page.
    publish_all(pubnub_factory("bob"), "f.shape", ["a"], who="bob")
    for path in (
        f"/v3/history/sub-key/{SUB}/channel/f.shape",
        f"/v3/history-with-actions/sub-key/{SUB}/channel/f.shape",
    ):
        status, body = http(realtime_server, path)
        assert status == 200
        assert [sorted(item) for item in body["channels"]["f.shape"]] == [["message", "timetoken"]]
        assert "more" not in body
    query = "include_uuid=true&include_message_type=true&include_meta=true"
    status, body = http(realtime_server, f"/v3/history/sub-key/{SUB}/channel/f.shape?{query}")
    (item,) = body["channels"]["f.shape"]
    assert (item["uuid"], item["message_type"], item["meta"]) == ("bob", None, {"who": "bob"})
