"""StreamWriter: batching by size and latency, env overrides, retries, end/close, threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from blocks_network.errors import NetworkError
from blocks_network.stream.errors import StreamClosedError, StreamOptionsError
from blocks_network.stream.settings import WriterSettings
from blocks_network.stream.writer import StreamWriter
from blocks_network.transport.http_client import HttpResponse

from .fakes import OK, RecordingPublisher

Frames = list[dict[str, Any]]


def make_writer(
    publisher: RecordingPublisher,
    *,
    fmt: str = "bytes",
    bundle: int = 4096,
    latency: int = 250,
    send_end: bool = True,
    on_failed: Any = None,
) -> StreamWriter:
    return StreamWriter(
        stream_id="t1-1",
        channel="stream.agent.t1-1",
        format=fmt,  # type: ignore[arg-type]
        publisher=publisher,
        token="tok",
        user_id="agent-stream-0001",
        settings=WriterSettings(bundle_size_bytes=bundle, max_latency_ms=latency),
        send_end=send_end,
        on_publish_failed=on_failed,
    )


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def writers() -> Iterator[list[StreamWriter]]:
    made: list[StreamWriter] = []
    yield made
    for w in made:
        w.abort()


def data_of(frames: Frames) -> bytes:
    import base64

    out = b""
    for f in frames:
        if f["type"] != "stream_data":
            continue
        for c in f["chunks"]:
            out += base64.b64decode(c) if f["encoding"] == "base64" else c.encode()
    return out


def test_publish_url_carries_token_uuid_meta_and_store_false(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, bundle=1)
    w.write("x")
    publisher.wait_for(lambda fs: len(fs) == 1)
    url = publisher.posts[0][0]
    assert "/publish/pub-c-x/sub-c-x/0/stream.agent.t1-1/0?" in url
    assert "store=0" in url and "auth=tok" in url and "uuid=agent-stream-0001" in url
    assert "meta=%7B%22sender%22%3A%22agent-stream-0001%22" in url
    w.end()


def test_flush_at_bundle_size_without_waiting_for_latency(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, bundle=100, latency=60_000)
    w.write(b"a" * 60)
    assert publisher.posts == []
    w.write(b"b" * 40)
    frames = publisher.wait_for(lambda fs: len(fs) == 1, timeout=2)
    assert frames[0]["seq"] == 0 and data_of(frames) == b"a" * 60 + b"b" * 40
    w.end()


def test_flush_after_max_latency_from_first_write(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, latency=80)
    started = time.monotonic()
    w.write("hello")
    frames = publisher.wait_for(lambda fs: len(fs) == 1, timeout=3)
    elapsed = time.monotonic() - started
    assert 0.075 <= elapsed < 1.0
    assert frames[0]["chunks"] == ["hello"]
    assert [t.name for t in threading.enumerate() if t.name.startswith("blocks-stream-flush-")]
    w.end()
    assert not [t for t in threading.enumerate() if t.name.startswith("blocks-stream-")]


def test_latency_zero_sends_every_write(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, latency=0)
    for i in range(3):
        w.write(f"{i}")
    assert w.flush(5)
    assert [f["chunks"] for f in publisher.frames()] == [["0"], ["1"], ["2"]]
    w.end()


def test_end_flushes_then_sends_stream_end_last(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, fmt="events", latency=60_000)
    for i in range(10):
        w.write({"i": i})
    w.end()
    frames = publisher.frames()
    assert frames[-1]["type"] == "stream_end" and frames[-1]["seq"] == 2
    assert [e["i"] for e in frames[0]["events"]] == list(range(10))
    assert frames[0]["seq"] == 1
    w.end()  # idempotent
    assert len(publisher.frames()) == 2
    with pytest.raises(StreamClosedError):
        w.write({"late": True})


def test_no_stream_end_when_not_asked(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, send_end=False, latency=60_000)
    w.write("x")
    w.end()
    assert [f["type"] for f in publisher.frames()] == ["stream_data"]


def test_close_flushes_without_stream_end(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, latency=60_000)
    w.write("x")
    w.close()
    assert [f["type"] for f in publisher.frames()] == ["stream_data"]


def test_abort_drops_buffered_writes(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, latency=60_000)
    w.write("x")
    w.abort()
    assert publisher.posts == []
    with pytest.raises(StreamClosedError):
        w.write("y")


def test_publish_retries_then_succeeds() -> None:
    def flaky(index: int, body: bytes) -> HttpResponse | Exception:
        if index == 0:
            return NetworkError("connection reset")
        if index == 1:
            return HttpResponse(503, {}, b"busy")
        return OK

    publisher = RecordingPublisher(flaky)
    w = make_writer(publisher, bundle=1)
    started = time.monotonic()
    w.write("x")
    assert w.flush(5)
    elapsed = time.monotonic() - started
    assert len(publisher.posts) == 3 and len(publisher.accepted) == 1
    assert elapsed >= 0.29  # 100 ms + 200 ms backoff
    w.end()


def test_final_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    failures: list[str] = []
    publisher = RecordingPublisher(lambda i, b: NetworkError("down"))
    w = make_writer(publisher, bundle=1, on_failed=failures.append)
    w.write("x")
    assert w.flush(5)
    assert len(publisher.posts) == 3
    assert w.frames_failed == 1 and failures
    assert "lost after retries" in caplog.text
    w.close()


def test_403_is_not_retried_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    publisher = RecordingPublisher(lambda i, b: HttpResponse(403, {}, b'{"message":"Forbidden"}'))
    w = make_writer(publisher, latency=0)
    w.write("a")
    w.write("b")
    assert w.flush(5)
    assert len(publisher.posts) == 2
    assert caplog.text.count("publishing refused (HTTP 403)") == 1
    w.close()


def test_write_type_rules(publisher: RecordingPublisher) -> None:
    b = make_writer(publisher)
    with pytest.raises(TypeError, match="str or bytes"):
        b.write({"x": 1})
    e = make_writer(publisher, fmt="events")
    with pytest.raises(TypeError, match="raw strings"):
        e.write("text")
    b.close()
    e.close()


def test_concurrent_writers_keep_every_byte(publisher: RecordingPublisher) -> None:
    w = make_writer(publisher, bundle=512, latency=20)

    def produce(tag: bytes) -> None:
        for _ in range(200):
            w.write(tag * 10)

    threads = [threading.Thread(target=produce, args=(bytes([65 + i]),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.end()
    frames = publisher.frames()
    assert sorted(f["seq"] for f in frames) == list(range(len(frames)))
    data = data_of(sorted(frames, key=lambda f: f["seq"]))
    assert len(data) == 4 * 200 * 10
    assert all(data.count(bytes([65 + i])) == 2000 for i in range(4))


def test_settings_resolution_explicit_then_env_then_default() -> None:
    env = {
        "STREAM_BUNDLE_SIZE": "100",
        "STREAM_MAX_LATENCY_MS": "5",
        "STREAM_MAX_MESSAGE_SIZE": "2048",
    }
    s = WriterSettings.resolve(env=env)
    assert (s.bundle_size_bytes, s.max_latency_ms, s.max_message_size) == (100, 5, 2048)
    s = WriterSettings.resolve(bundle_size_bytes=7, max_latency_ms=9, env=env)
    assert (s.bundle_size_bytes, s.max_latency_ms) == (7, 9)
    s = WriterSettings.resolve(env={})
    assert (s.bundle_size_bytes, s.max_latency_ms, s.max_message_size) == (4096, 250, 16_384)
    with pytest.raises(StreamOptionsError, match="STREAM_BUNDLE_SIZE"):
        WriterSettings.resolve(env={"STREAM_BUNDLE_SIZE": "lots"})
    with pytest.raises(StreamOptionsError, match="max message size"):
        WriterSettings.resolve(env={"STREAM_MAX_MESSAGE_SIZE": "100"})
    with pytest.raises(StreamOptionsError):
        WriterSettings.resolve(max_latency_ms=-1)
