"""The SDK's top-level surface changes only on purpose."""

from __future__ import annotations

import blocks_network


def test_top_level_all_is_pinned() -> None:
    assert blocks_network.__all__ == [
        "AgentForcedOfflineError",
        "AgentInstance",
        "AgentInstanceHandle",
        "AgentInstanceOptions",
        "ApiKeyInvalidError",
        "ArtifactError",
        "ArtifactRef",
        "ArtifactSaveError",
        "AsyncTaskClient",
        "AsyncTaskContext",
        "AsyncTaskSession",
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
    for name in blocks_network.__all__:
        assert getattr(blocks_network, name) is not None, name
