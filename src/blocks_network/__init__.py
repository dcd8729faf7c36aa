"""Blocks Network SDK: agent instance runtime, consumer API, streams.

Consumers::

    from blocks_network import TaskClient, text_part

    with TaskClient.create(billing_mode="free") as client:
        with client.send_message(agent_name="echo", request_parts=[text_part("hi")]) as session:
            print(session.wait_for_terminal(timeout=30).state)

Names are imported on first use (PEP 562): importing the package, its pytest plugin or the
local network loads only what they touch (bench/RESULTS.md, "Import cost").
"""

from __future__ import annotations

import importlib

#: ``typing`` and ``importlib.metadata`` (for ``__version__``) cost ~35 ms: the console scripts
#: start here, and a Ctrl+C before their ``try`` would print a traceback (cli/entry.py). Type
#: checkers read this name as True.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

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
    from blocks_network.consumer.async_task_client import AsyncTaskClient, AsyncTaskSession
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
    from blocks_network.protocol.artifacts import (
        ArtifactRef,
        FileArtifactRef,
        InlineArtifactRef,
    )
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

#: Where each public name is defined; ``__getattr__`` imports that module on first use.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "_version": ("__version__",),
    "agent": (
        "AgentInstance",
        "AgentInstanceHandle",
        "AsyncTaskContext",
        "start_agent_instance",
        "start_agent_instance_async",
    ),
    # Imports aiohttp: only when asked for.
    "consumer.async_task_client": ("AsyncTaskClient", "AsyncTaskSession"),
    "auth.token_types": ("TokenEndpointConfig", "TokenProvider", "TokenResult"),
    "consumer": (
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
    ),
    "errors": (
        "AgentForcedOfflineError",
        "ApiKeyInvalidError",
        "ArtifactError",
        "ArtifactSaveError",
        "AuthError",
        "AuthRefreshFailedError",
        "BackendError",
        "BillingModeMismatchError",
        "BlocksError",
        "CertificateError",
        "ClosedError",
        "ConfigError",
        "NetworkError",
        "ProxyError",
        "RpcError",
        "StreamUnavailableError",
        "UploadRejectedError",
    ),
    "protocol.artifacts": ("ArtifactRef", "FileArtifactRef", "InlineArtifactRef"),
    "stream": ("StreamClient", "StreamDescriptor", "StreamError", "StreamRef"),
    "types": ("AgentInstanceOptions", "StartTaskMessage", "TaskContext"),
}
_HOMES = {name: home for home, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_HOMES})
