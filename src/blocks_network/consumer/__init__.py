"""The consumer API: submit tasks, follow their events, read their artifacts."""

from typing import TYPE_CHECKING, Any

from blocks_network.consumer.artifacts import DownloadedArtifact, download_artifact
from blocks_network.consumer.events import CallbackErrorContext, TaskEvent
from blocks_network.consumer.parts import SendMessageRequestPart, file_part, text_part
from blocks_network.consumer.task_client import TaskClient, TaskList, create_task_client
from blocks_network.consumer.task_session import TaskSession

__all__ = [
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

if TYPE_CHECKING:
    from blocks_network.consumer.async_task_client import AsyncTaskClient, AsyncTaskSession

_ASYNC_NAMES = ("AsyncTaskClient", "AsyncTaskSession")


def __getattr__(name: str) -> Any:
    # The async API imports aiohttp: only programs that use it pay for that.
    if name in _ASYNC_NAMES:
        from blocks_network.consumer import async_task_client

        return getattr(async_task_client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
