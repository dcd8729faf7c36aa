"""Subscribe envelopes carry exactly the members the real service sends.

The shapes are the official Python client's recorded answers (pubnub/python,
tests/integrational/fixtures/): asyncio/subscription/sub_pub_unsub.yaml (a message on a
direct subscription: ``i``, ``s`` = the publish's ``seqn``, no ``b``),
native_threads/subscribe/subscribe_cg_publish_unsubscribe.json (a publish without ``seqn``
arrives with ``"s":1``; through a channel group, ``b`` names the group) and
asyncio/subscription/join_leave.yaml (a presence event: no ``i`` nor ``s``, ``b`` naming the
``-pnpres`` channel).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET

PUB, SUB = OPEN_KEYSET.publish_key, OPEN_KEYSET.subscribe_key
MESSAGE_KEYS = {"a", "f", "i", "s", "p", "k", "c", "d"}
PRESENCE_KEYS = {"a", "f", "p", "k", "c", "d", "b"}


def get(server: RealtimeServer, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=15) as response:
        return json.loads(response.read())


def cursor(server: RealtimeServer, channels: str, query: str = "") -> str:
    answer = get(server, f"/v2/subscribe/{SUB}/{channels}/0?tt=0&uuid=reader{query}")
    return str(answer["t"]["t"])


def poll(server: RealtimeServer, channels: str, tt: str, query: str = "") -> list[dict[str, Any]]:
    answer = get(server, f"/v2/subscribe/{SUB}/{channels}/0?tt={tt}&tr=1&uuid=reader{query}")
    messages: list[dict[str, Any]] = answer["m"]
    return messages


def test_a_message_carries_its_publish_sequence_number_and_no_match(
    realtime_server: RealtimeServer,
) -> None:
    tt = cursor(realtime_server, "seq")
    get(realtime_server, f"/publish/{PUB}/{SUB}/0/seq/0/%22one%22?seqn=7&uuid=pub")
    get(realtime_server, f"/publish/{PUB}/{SUB}/0/seq/0/%22two%22?uuid=pub")
    first, second = poll(realtime_server, "seq", tt)
    assert set(first) == MESSAGE_KEYS
    assert (first["i"], first["s"], first["d"], first["c"]) == ("pub", 7, "one", "seq")
    assert (second["s"], second["d"]) == (1, "two")


def test_the_sequence_number_survives_a_restart(tmp_path: Any) -> None:
    with RealtimeServer([OPEN_KEYSET], data_dir=tmp_path / "data") as server:
        tt = cursor(server, "kept")
        get(server, f"/publish/{PUB}/{SUB}/0/kept/0/%22x%22?seqn=42&uuid=pub")
    with RealtimeServer([OPEN_KEYSET], data_dir=tmp_path / "data") as server:
        (message,) = poll(server, "kept", tt)
    assert message["s"] == 42


@pytest.mark.parametrize("seqn", ["abc", "-1", "2147483648", "1.5", "%C2%B2"])
def test_a_bad_sequence_number_is_refused_in_the_publish_shape(
    realtime_server: RealtimeServer, seqn: str
) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        get(realtime_server, f"/publish/{PUB}/{SUB}/0/seq/0/%22x%22?seqn={seqn}")
    assert info.value.code == 400
    body = json.loads(info.value.read())
    assert body[:2] == [0, "Invalid seqn: must be an integer from 0 to 2147483647"]


def test_a_presence_event_has_no_publisher_nor_sequence_and_matches_its_channel(
    realtime_server: RealtimeServer,
) -> None:
    tt = cursor(realtime_server, "room-pnpres")
    get(realtime_server, f"/v2/subscribe/{SUB}/room/0?tt=0&uuid=alice")  # alice joins
    (event,) = poll(realtime_server, "room-pnpres", tt)
    assert set(event) == PRESENCE_KEYS
    assert (event["c"], event["b"]) == ("room-pnpres", "room-pnpres")
    assert (event["d"]["action"], event["d"]["uuid"]) == ("join", "alice")


def test_through_a_channel_group_the_match_names_the_group(
    realtime_server: RealtimeServer,
) -> None:
    get(realtime_server, f"/v1/channel-registration/sub-key/{SUB}/channel-group/g?add=member")
    # Reading g-pnpres alone is no subscription to member: the reader never joins it.
    tt = cursor(realtime_server, ",", "&channel-group=g-pnpres")
    get(realtime_server, f"/publish/{PUB}/{SUB}/0/member/0/%22hi%22?seqn=3&uuid=pub")
    get(realtime_server, f"/v2/subscribe/{SUB}/member/0?tt=0&uuid=alice")  # alice joins

    (message,) = poll(realtime_server, ",", tt, "&channel-group=g")
    assert set(message) == MESSAGE_KEYS | {"b"}
    assert (message["c"], message["b"], message["s"]) == ("member", "g", 3)

    events = poll(realtime_server, ",", tt, "&channel-group=g-pnpres")
    assert events, "alice's join was not delivered"
    event = events[0]
    assert set(event) == PRESENCE_KEYS
    assert (event["c"], event["b"], event["d"]["uuid"]) == ("member-pnpres", "g-pnpres", "alice")
