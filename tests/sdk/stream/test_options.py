"""create_stream option resolution against the card, and the stream token lifetime."""

from __future__ import annotations

import pytest

from blocks_network.protocol.agent_card import CardStream
from blocks_network.stream.errors import StreamOptionsError
from blocks_network.stream.options import duration_minutes, resolve_stream

ONE = {"tokens": CardStream("tokens", "outbound", "events")}
MANY = {
    "tokens": CardStream("tokens", "outbound", "events"),
    "audio": CardStream("audio", "outbound", "bytes"),
    "room": CardStream("room", "bidirectional", "events", affinity="shared"),
}


def test_defaults_without_a_card_map() -> None:
    r = resolve_stream({}, task_kind="request")
    assert (r.declared_stream, r.direction, r.format, r.affinity, r.external) == (
        "_default",
        "outbound",
        "bytes",
        "dedicated",
        False,
    )


def test_default_resolves_to_the_single_declared_stream() -> None:
    r = resolve_stream(ONE, task_kind="request")
    assert (r.declared_stream, r.format) == ("tokens", "events")


def test_explicit_default_entry_wins() -> None:
    card = {"_default": CardStream("_default", "outbound", "bytes"), **ONE}
    assert resolve_stream(card, task_kind="request").declared_stream == "_default"


def test_several_streams_need_a_name() -> None:
    with pytest.raises(StreamOptionsError, match="declared_stream"):
        resolve_stream(MANY, task_kind="pipe")
    r = resolve_stream(MANY, task_kind="pipe", declared_stream="room")
    assert (r.direction, r.format, r.affinity) == ("bidirectional", "events", "shared")


def test_unknown_name_is_an_error() -> None:
    with pytest.raises(StreamOptionsError, match="not in the agent card"):
        resolve_stream(MANY, task_kind="pipe", declared_stream="video")


def test_explicit_options_must_agree_with_the_card() -> None:
    assert resolve_stream(ONE, task_kind="request", format="events").format == "events"
    with pytest.raises(StreamOptionsError, match="conflicts with the agent card"):
        resolve_stream(ONE, task_kind="request", format="bytes")
    with pytest.raises(StreamOptionsError, match="conflicts"):
        resolve_stream(MANY, task_kind="pipe", declared_stream="room", affinity="dedicated")


def test_bad_vocabulary() -> None:
    with pytest.raises(StreamOptionsError, match="direction must be one of"):
        resolve_stream({}, task_kind="pipe", direction="sideways")


def test_request_task_restrictions() -> None:
    for kw in (
        {"direction": "inbound"},
        {"direction": "bidirectional"},
        {"external": True},
        {"affinity": "shared"},
    ):
        with pytest.raises(StreamOptionsError, match="request tasks"):
            resolve_stream({}, task_kind="request", **kw)  # type: ignore[arg-type]
    assert resolve_stream({}, task_kind="pipe", direction="inbound").direction == "inbound"


def test_shared_cannot_be_external() -> None:
    with pytest.raises(StreamOptionsError, match="shared stream cannot be external"):
        resolve_stream({}, task_kind="pipe", affinity="shared", external=True)


def test_duration_minutes() -> None:
    assert duration_minutes("pipe", 5, None) == 5
    assert duration_minutes("pipe", None, None) == 60
    assert duration_minutes("request", None, 90) == 2
    assert duration_minutes("request", None, None) == 60
