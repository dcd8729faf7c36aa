"""Channel builders, parsers and naming rules (protocol §2)."""

from __future__ import annotations

import pytest

from blocks_network.protocol import (
    ProtocolError,
    StreamChannel,
    TaskChannel,
    agent_channel_wildcard,
    control_channel,
    is_reserved_owner_id,
    is_valid_agent_name,
    normalize_tag_slug,
    observability_channel,
    parse_control_channel,
    parse_setup_channel,
    parse_stream_channel,
    parse_task_channel,
    presence_channel,
    registry_tag_index,
    setup_channel,
    stream_channel,
    stream_channel_wildcard,
    task_channel,
    task_channel_wildcard,
    task_object_id,
    validate_agent_name,
    validate_stream_id,
)


def test_builders_spell_the_spec_patterns() -> None:
    assert control_channel("ag_1") == "agent.ag_1.control"
    assert task_channel("org_9", "t_123") == "u.org_9.t_123"
    assert setup_channel("org_9", "t_1") == "setup.org_9.t_1"
    assert stream_channel("echo_stream", "t_1-1") == "stream.echo_stream.t_1-1"
    assert task_channel_wildcard("org_9") == "u.org_9.*"
    assert stream_channel_wildcard("echo") == "stream.echo.*"
    assert agent_channel_wildcard("echo") == "agent.echo.*"
    assert observability_channel("echo") == "obs.echo.log"
    assert task_object_id("t_1") == "task.t_1"
    assert presence_channel("stream.a.b") == "stream.a.b-pnpres"
    assert registry_tag_index("Image Generation") == "registry.skill.image_generation"


@pytest.mark.parametrize(
    ("org", "task"),
    [("", "t"), ("o", ""), ("a.b", "t"), ("o", "t*"), ("o", "a,b"), ("o w", "t")],
)
def test_task_channel_rejects_unusable_segments(org: str, task: str) -> None:
    with pytest.raises(ProtocolError):
        task_channel(org, task)
    with pytest.raises(ProtocolError):
        setup_channel(org, task)


def test_stream_channel_validates_both_parts() -> None:
    with pytest.raises(ProtocolError, match="agent name"):
        stream_channel("acme-echo", "s1")
    with pytest.raises(ProtocolError, match="stream id"):
        stream_channel("echo", "a.b")


def test_parse_task_channel_round_trips_and_rejects_others() -> None:
    assert parse_task_channel(task_channel("org_9", "t_1")) == TaskChannel("org_9", "t_1")
    for other in [
        "setup.org.t",
        "u.org",
        "u.org.t.x",
        "u..t",
        "u.org.*",
        "u.org.t-pnpres",
        "",
        None,
        42,
    ]:
        assert parse_task_channel(other) is None, other


def test_parse_setup_channel() -> None:
    assert parse_setup_channel("setup.o.t") == TaskChannel("o", "t")
    assert parse_setup_channel("u.o.t") is None


def test_parse_stream_channel() -> None:
    assert parse_stream_channel("stream.echo.t_1-1") == StreamChannel("echo", "t_1-1")
    assert parse_stream_channel("stream.acme-echo.s") is None
    assert parse_stream_channel("stream.echo." + "a" * 93) is None
    assert parse_stream_channel("stream.echo.*") is None
    assert parse_stream_channel("u.echo.s") is None


def test_parse_control_channel() -> None:
    assert parse_control_channel("agent.ag_1.control") == "ag_1"
    assert parse_control_channel("agent.ag_1.other") is None
    assert parse_control_channel("agent.*.control") is None


@pytest.mark.parametrize("name", ["echo", "echo_py", "A1_b2", "_"])
def test_valid_agent_names(name: str) -> None:
    assert validate_agent_name(name) == name
    assert is_valid_agent_name(name)


@pytest.mark.parametrize("name", ["", "acme-echo", "a.b", "a b", "ä", None, 3])
def test_invalid_agent_names(name: object) -> None:
    assert not is_valid_agent_name(name)
    with pytest.raises(ProtocolError):
        validate_agent_name(name)


def test_stream_id_rules() -> None:
    assert validate_stream_id("t_1-1") == "t_1-1"
    assert validate_stream_id("a" * 92) == "a" * 92
    for bad in ["", "a" * 93, "a.b", "a b", "é", None]:
        with pytest.raises(ProtocolError):
            validate_stream_id(bad)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Image Generation", "image_generation"),
        ("  Hello,  World!! ", "hello_world"),
        ("v1.2_beta", "v1.2_beta"),
        ("__x__", "x"),
        ("Ünïcode", "n_code"),
        ("!!!", ""),
    ],
)
def test_normalize_tag_slug(text: str, slug: str) -> None:
    assert normalize_tag_slug(text) == slug


def test_registry_tag_index_needs_a_slug() -> None:
    with pytest.raises(ProtocolError):
        registry_tag_index("!!!")


@pytest.mark.parametrize(
    ("owner", "reserved"),
    [
        ("agent", True),
        ("AGENT", True),
        ("u", True),
        ("u.org", True),
        ("sys-admin", True),
        ("stream:1", True),
        ("anonymous", True),
        ("System", True),
        ("user_1", False),
        ("u_1", False),
        ("agentsmith", False),
        ("observer", False),
    ],
)
def test_reserved_owner_ids(owner: str, reserved: bool) -> None:
    assert is_reserved_owner_id(owner) is reserved
