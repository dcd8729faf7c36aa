"""The consumer's public surface changes only on purpose."""

from __future__ import annotations

import blocks_network
import blocks_network.consumer as consumer


def test_consumer_all_is_pinned_and_sorted() -> None:
    assert consumer.__all__ == [
        "AsyncTaskClient",
        "AsyncTaskSession",
        "CallbackErrorContext",
        "DownloadedArtifact",
        "SendMessageRequestPart",
        "TaskClient",
        "TaskEvent",
        "TaskList",
        "TaskSession",
        "create_task_client",
        "download_artifact",
        "file_part",
        "text_part",
    ]


def test_the_seed_imports_work_from_the_top_level() -> None:
    for name in (
        "TaskClient",
        "TokenEndpointConfig",
        "TokenResult",
        "create_task_client",
        "text_part",
        "file_part",
        "download_artifact",
        "StreamUnavailableError",
        "ArtifactRef",
        "DownloadedArtifact",
        "CallbackErrorContext",
    ):
        assert name in blocks_network.__all__, name
        assert getattr(blocks_network, name) is not None
    assert blocks_network.__all__ == sorted(blocks_network.__all__)
