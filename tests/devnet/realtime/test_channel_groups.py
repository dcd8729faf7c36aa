"""Channel groups end to end with the official client: the registry, subscribing by group,
the envelope's subscription match, limits and Access Manager."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pubnub.enums import PNStatusCategory
from pubnub.exceptions import PubNubException
from pubnub.models.consumer.v3.channel import Channel
from pubnub.models.consumer.v3.group import Group

from blocks_devnet.realtime.channel_groups import ChannelGroups
from blocks_devnet.realtime.server import RealtimeServer
from blocks_devnet.store.database import Database
from tests.conftest import OPEN_KEYSET, SECURE_KEYSET, PubNubFactory
from tests.support.pubnub_clients import RecordingListener, assert_empty, next_item

SUB = OPEN_KEYSET.subscribe_key


def registry(server: RealtimeServer, tail: str) -> tuple[int, object]:
    url = f"{server.url}/v1/channel-registration/sub-key/{SUB}/channel-group/{tail}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_add_list_remove_and_delete_in_the_real_shapes(realtime_server: RealtimeServer) -> None:
    assert registry(realtime_server, "g1?add=a,b,c") == (
        200,
        {"status": 200, "message": "OK", "service": "channel-registry", "error": False},
    )
    assert registry(realtime_server, "g1") == (
        200,
        {
            "status": 200,
            "payload": {"channels": ["a", "b", "c"], "group": "g1"},
            "service": "channel-registry",
            "error": False,
        },
    )
    assert registry(realtime_server, "g1?remove=b,zz")[0] == 200
    assert registry(realtime_server, "g1")[1]["payload"]["channels"] == ["a", "c"]  # type: ignore[index]
    assert registry(realtime_server, "g1/remove")[0] == 200
    assert registry(realtime_server, "g1")[1]["payload"]["channels"] == []  # type: ignore[index]


@pytest.mark.parametrize(
    "tail",
    ["g?add=", "g?remove=", "g:ns?add=a", "g-pnpres?add=a", f"{'g' * 93}?add=a", "g/other"],
)
def test_bad_registry_requests_are_400(realtime_server: RealtimeServer, tail: str) -> None:
    status, body = registry(realtime_server, tail)
    assert status == 400
    assert isinstance(body, dict) and body["error"] is True and body["service"]


def test_a_group_holds_at_most_2000_channels(realtime_server: RealtimeServer) -> None:
    first = ",".join(f"c{i}" for i in range(1500))
    second = ",".join(f"d{i}" for i in range(501))
    assert registry(realtime_server, f"big?add={first}")[0] == 200
    status, body = registry(realtime_server, f"big?add={second}")
    assert status == 400 and "2000" in body["message"]  # type: ignore[index]
    assert len(registry(realtime_server, "big")[1]["payload"]["channels"]) == 1500  # type: ignore[index]


def test_subscribe_by_group_gets_members_with_the_group_as_match(
    pubnub_factory: PubNubFactory,
) -> None:
    admin = pubnub_factory("admin")
    admin.add_channel_to_channel_group().channel_group("tasks").channels(["t1", "t2"]).sync()
    listed = admin.list_channels_in_channel_group().channel_group("tasks").sync()
    assert sorted(listed.result.channels) == ["t1", "t2"]

    reader = pubnub_factory("reader")
    listener = RecordingListener()
    reader.add_listener(listener)
    reader.subscribe().channel_groups(["tasks"]).channels(["direct"]).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)

    writer = pubnub_factory("writer")
    writer.publish().channel("t2").message("via group").sync()
    writer.publish().channel("direct").message("direct").sync()
    writer.publish().channel("elsewhere").message("not followed").sync()
    first, second = next_item(listener.messages), next_item(listener.messages)
    assert (first.channel, first.subscription, first.message) == ("t2", "tasks", "via group")
    assert (second.channel, second.message) == ("direct", "direct")
    assert second.subscription in (None, "direct")
    assert_empty(listener.messages)


def test_eleven_groups_in_one_subscribe_are_refused(realtime_server: RealtimeServer) -> None:
    groups = ",".join(f"g{i}" for i in range(11))
    url = f"{realtime_server.url}/v2/subscribe/{SUB}/,/0?tt=0&uuid=u&channel-group={groups}"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=10)
    assert info.value.code == 400


def test_access_manager_guards_groups(pubnub_factory: PubNubFactory) -> None:
    server_client = pubnub_factory("server", SECURE_KEYSET, secret=True)
    server_client.add_channel_to_channel_group().channel_group("g").channels(["c"]).sync()
    token = (
        server_client.grant_token()
        .groups([Group.id("g").read()])
        .channels([Channel.id("c").read()])
        .ttl(10)
        .sync()
        .result.token
    )
    reader = pubnub_factory("reader", SECURE_KEYSET)
    reader.set_token(token)
    # Reading is granted; managing the group is not.
    with pytest.raises(PubNubException) as info:
        reader.add_channel_to_channel_group().channel_group("g").channels(["x"]).sync()
    assert info.value.get_status_code() == 403
    listener = RecordingListener()
    reader.add_listener(listener)
    reader.subscribe().channel_groups(["g"]).execute()
    listener.wait_status(PNStatusCategory.PNConnectedCategory)
    server_client.publish().channel("c").message("hi").sync()
    assert next_item(listener.messages).subscription == "g"

    stranger = pubnub_factory("stranger", SECURE_KEYSET)
    stranger.set_token(
        server_client.grant_token().channels([Channel.id("c").read()]).ttl(10).sync().result.token
    )
    denied = RecordingListener()
    stranger.add_listener(denied)
    stranger.subscribe().channel_groups(["g"]).execute()
    denied.wait_status(PNStatusCategory.PNAccessDeniedCategory)


def test_memberships_survive_a_restart_and_the_cache_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = Database(path)
    groups = ChannelGroups(db, cached_groups=2)
    for n in range(5):
        groups.add("sub", f"g{n}", [f"c{n}", "shared"])
    assert len(groups._cache) == 2
    assert groups.channels("sub", "g0") == ("c0", "shared")  # read back from SQLite
    db.close()
    again = ChannelGroups(Database(path))
    assert again.expand("sub", ["g1", "g2", "g1-pnpres"]) == (
        ["c1", "shared", "c2", "c1-pnpres", "shared-pnpres"],
        {
            "c1": "g1",
            "shared": "g1",
            "c2": "g2",
            "c1-pnpres": "g1-pnpres",
            "shared-pnpres": "g1-pnpres",
        },
    )


def test_presence_calls_with_a_group_cover_its_members(
    realtime_server: RealtimeServer, pubnub_factory: PubNubFactory
) -> None:
    admin = pubnub_factory("admin")
    admin.add_channel_to_channel_group().channel_group("room").channels(["r1", "r2"]).sync()
    tail = f"/v2/presence/sub-key/{SUB}/channel/,/heartbeat?uuid=member&channel-group=room"
    with urllib.request.urlopen(realtime_server.url + tail, timeout=10) as answer:
        assert answer.status == 200
    here = admin.here_now().channel_groups(["room"]).include_uuids(True).sync().result
    assert {channel.channel_name: channel.occupancy for channel in here.channels} == {
        "r1": 1,
        "r2": 1,
    }
