"""The setup handshake's answer handling (fake publisher) and status category mapping."""

from __future__ import annotations

import json

import pytest

from blocks_network.protocol.stream_setup import (
    StreamSetup,
    StreamSetupFailure,
    StreamSetupOk,
    stream_setup_rejection_body,
)
from blocks_network.stream.errors import (
    StreamError,
    StreamSetupError,
    is_error_category,
)
from blocks_network.stream.setup import request_stream_setup
from blocks_network.transport.http_client import HttpResponse

from .fakes import RecordingPublisher

SETUP = StreamSetup(
    task_id="t_1",
    org_id="org_9",
    agent_name="echo_stream",
    stream_id="t_1-1",
    channel="stream.echo_stream.t_1-1",
    direction="outbound",
    task_kind="request",
    duration_minutes=1,
    format="events",
    affinity="dedicated",
    declared_stream="_default",
    phase="embedded",
    metadata={},
)


def answer(status: int, body: object) -> RecordingPublisher:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RecordingPublisher(lambda i, b: HttpResponse(status, {}, raw))


def test_success_returns_the_writer_token_and_publishes_on_the_setup_channel() -> None:
    ok = StreamSetupOk("t_1", "t_1-1", SETUP.channel, "outbound", "embedded", 1, "T7a")
    pub = answer(403, stream_setup_rejection_body(ok))
    result = request_stream_setup(pub, SETUP, write_token="T2", user_id="AG-echo_stream-x")
    assert result.token == "T7a"
    url, body = pub.posts[0]
    assert "/0/setup.org_9.t_1/0?" in url and "auth=T2" in url and "uuid=AG-echo_stream-x" in url
    assert "store=0" in url
    assert json.loads(body) == SETUP.to_wire()


def test_refusal_raises_with_the_code() -> None:
    pub = answer(
        403, stream_setup_rejection_body(StreamSetupFailure("FailedPrecondition", "task ended"))
    )
    with pytest.raises(StreamSetupError, match="task ended") as info:
        request_stream_setup(pub, SETUP, write_token="T2", user_id="u")
    assert info.value.code == "FailedPrecondition"


def test_access_manager_403_is_a_token_problem() -> None:
    pub = answer(403, {"message": "Forbidden", "error": True, "status": 403})
    with pytest.raises(StreamSetupError, match="write token"):
        request_stream_setup(pub, SETUP, write_token="T2", user_id="u")


def test_accepted_publish_is_an_error() -> None:
    pub = answer(200, [1, "Sent", "1"])
    with pytest.raises(StreamSetupError, match="did not receive expected 403"):
        request_stream_setup(pub, SETUP, write_token="T2", user_id="u")


def test_server_errors_are_retried() -> None:
    ok = StreamSetupOk("t_1", "t_1-1", SETUP.channel, "outbound", "embedded", 1, "T7a")
    body = json.dumps(stream_setup_rejection_body(ok)).encode()
    pub = RecordingPublisher(
        lambda i, b: HttpResponse(503 if i == 0 else 403, {}, b"" if i == 0 else body)
    )
    assert request_stream_setup(pub, SETUP, write_token="T2", user_id="u").token == "T7a"
    assert len(pub.posts) == 2


def test_category_mapping() -> None:
    assert not is_error_category("connected") and is_error_category("timeout")
    assert StreamError.create("access_denied", "x", "c").fatal
    assert not StreamError.create("timeout", "x", "c").fatal


def test_public_api_is_pinned() -> None:
    import blocks_network.stream as stream

    assert stream.__all__ == sorted(stream.__all__, key=lambda n: (not n.isupper(), n))
    assert {"StreamError", "StreamClient", "StreamRef", "StreamDescriptor"} <= set(stream.__all__)
