"""The consumer API: submit tasks, follow their events, read their artifacts."""

from blocks_network.consumer.artifacts import DownloadedArtifact, download_artifact
from blocks_network.consumer.events import CallbackErrorContext, TaskEvent
from blocks_network.consumer.parts import SendMessageRequestPart, file_part, text_part
from blocks_network.consumer.task_client import TaskClient, TaskList, create_task_client
from blocks_network.consumer.task_session import TaskSession

__all__ = [
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
