"""The instance's stream registry: holders, shared ref-counting, compatibility, counts."""

from __future__ import annotations

import pytest

from blocks_network.stream import StreamClient, StreamOptionsError
from blocks_network.stream.client import StreamInfo
from blocks_network.stream.registry import StreamEntry, StreamRegistry


def entry(
    stream_id: str, task: str, *, affinity: str = "dedicated", external: bool = False
) -> StreamEntry:
    info = StreamInfo(task, stream_id, f"stream.a.{stream_id}", "outbound", "events", affinity)  # type: ignore[arg-type]
    return StreamEntry(
        stream_id, StreamClient(info), "outbound", "events", affinity, external, [task]
    )  # type: ignore[arg-type]


def test_shared_stream_is_released_by_its_last_holder() -> None:
    reg = StreamRegistry()
    reg.add(entry("room", "t1", affinity="shared"))
    reg.add(entry("t1-1", "t1"))
    assert reg.attach("room", "t2") is not None
    assert reg.attach("room", "t2").tasks == ["t1", "t2"]  # type: ignore[union-attr]
    released, kept = reg.detach_task("t1")
    assert [e.stream_id for e in released] == ["t1-1"]
    assert [e.stream_id for e in kept] == ["room"]
    assert reg.task_stream_ids("t2") == ["room"]
    released, kept = reg.detach_task("t2")
    assert [e.stream_id for e in released] == ["room"] and kept == []
    assert reg.get("room") is None


def test_compatibility_of_a_second_holder() -> None:
    shared = entry("room", "t1", affinity="shared")
    shared.check_compatible("outbound", "events", "shared", False)
    with pytest.raises(StreamOptionsError, match="already open"):
        shared.check_compatible("outbound", "bytes", "shared", False)


def test_remove_and_counts() -> None:
    reg = StreamRegistry()
    reg.add(entry("t1-1", "t1"))
    reg.add(entry("t1-2", "t1", external=True))
    assert reg.active_count() == 1  # external streams are written elsewhere
    removed = reg.remove("t1-1")
    assert removed is not None and removed.tasks == ["t1"]
    assert reg.remove("t1-1") is None
    assert [e.stream_id for e in reg.remove_all()] == ["t1-2"]
    assert reg.attach("gone", "t9") is None
