"""Blocks Network SDK: agent instance runtime, consumer API, streams.

Consumers::

    from blocks_network import TaskClient, text_part

    with TaskClient.create(billing_mode="free") as client:
        with client.send_message(agent_name="echo", request_parts=[text_part("hi")]) as session:
            print(session.wait_for_terminal(timeout=30).state)
"""

from blocks_network._version import __version__ as __version__
from blocks_network.agent import (
    AgentInstance,
    AgentInstanceHandle,
    AsyncTaskContext,
    start_agent_instance,
    start_agent_instance_async,
)
from blocks_network.auth.token_types import TokenEndpointConfig, TokenProvider, TokenResult
from blocks_network.consumer import (
    CallbackErrorContext,
    DownloadedArtifact,
    SendMessageRequestPart,
    TaskClient,
    TaskEvent,
    TaskList,
    TaskSession,
    create_task_client,
    download_artifact,
    file_part,
    text_part,
)
from blocks_network.errors import (
    AgentForcedOfflineError,
    ApiKeyInvalidError,
    ArtifactError,
    ArtifactSaveError,
    AuthError,
    AuthRefreshFailedError,
    BackendError,
    BillingModeMismatchError,
    BlocksError,
    CertificateError,
    ClosedError,
    ConfigError,
    NetworkError,
    ProxyError,
    RpcError,
    StreamUnavailableError,
    UploadRejectedError,
)
from blocks_network.protocol.artifacts import ArtifactRef, FileArtifactRef, InlineArtifactRef
from blocks_network.stream import StreamClient, StreamDescriptor, StreamError, StreamRef
from blocks_network.types import AgentInstanceOptions, StartTaskMessage, TaskContext

__all__ = [
    "AgentForcedOfflineError",
    "AgentInstance",
    "AgentInstanceHandle",
    "AgentInstanceOptions",
    "ApiKeyInvalidError",
    "ArtifactError",
    "ArtifactRef",
    "ArtifactSaveError",
    "AsyncTaskContext",
    "AuthError",
    "AuthRefreshFailedError",
    "BackendError",
    "BillingModeMismatchError",
    "BlocksError",
    "CallbackErrorContext",
    "CertificateError",
    "ClosedError",
    "ConfigError",
    "DownloadedArtifact",
    "FileArtifactRef",
    "InlineArtifactRef",
    "NetworkError",
    "ProxyError",
    "RpcError",
    "SendMessageRequestPart",
    "StartTaskMessage",
    "StreamClient",
    "StreamDescriptor",
    "StreamError",
    "StreamRef",
    "StreamUnavailableError",
    "TaskClient",
    "TaskContext",
    "TaskEvent",
    "TaskList",
    "TaskSession",
    "TokenEndpointConfig",
    "TokenProvider",
    "TokenResult",
    "UploadRejectedError",
    "create_task_client",
    "download_artifact",
    "file_part",
    "start_agent_instance",
    "start_agent_instance_async",
    "text_part",
]
