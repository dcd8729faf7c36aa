"""Identifier formats (protocol §2, §4.1)."""

from __future__ import annotations

import re

import pytest

from blocks_network.protocol import (
    DEFAULT_CLIENT_ID,
    ProtocolError,
    instance_agent_name,
    new_download_client_id,
    new_instance_id,
    new_rpc_id,
    new_session_client_id,
    stream_client_id,
    task_client_user_id,
)

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_instance_id_format_and_uniqueness() -> None:
    first, second = new_instance_id("echo_py"), new_instance_id("echo_py")
    assert re.fullmatch(rf"AG-echo_py-{_UUID}", first)
    assert first != second
    assert instance_agent_name(first) == "echo_py"


def test_instance_id_rejects_bad_agent_name() -> None:
    with pytest.raises(ProtocolError):
        new_instance_id("acme-echo")


def test_instance_agent_name_of_non_instance_ids() -> None:
    assert instance_agent_name("blocks-task-0123456789ab") is None
    assert instance_agent_name("AG-echo-notauuid") is None


def test_rpc_id_format() -> None:
    assert re.fullmatch(r"rpc-1717000000000-[0-9a-f]{8}", new_rpc_id(1717000000000))
    assert re.fullmatch(r"rpc-\d{13}-[0-9a-f]{8}", new_rpc_id())


def test_client_ids() -> None:
    assert re.fullmatch(r"blocks-task-[0-9a-f]{12}", new_session_client_id())
    assert re.fullmatch(r"blocks-dl-[0-9a-f]{12}", new_download_client_id())
    assert DEFAULT_CLIENT_ID == "blocks-agent"
    assert task_client_user_id("AG-x-1") == "AG-x-1-taskclient"
    assert stream_client_id("echo", 7) == "echo-stream-0007"
    assert stream_client_id("user_1", 12345) == "user_1-stream-12345"
