"""The SDK's exceptions, rooted at :class:`BlocksError`.

::

    BlocksError
    ├── ConfigError (also ValueError)          bad option, missing key, bad CDM document
    │   └── CertificateError                   a server's TLS certificate does not verify
    ├── NetworkError (also ConnectionError)    backend or CDM unreachable
    │   └── ProxyError                         the proxy refused to open a tunnel
    ├── BackendError                           the backend refused a request (status, code)
    │   ├── RpcError                           a JSON-RPC error (code, data_code, details)
    │   │   └── BillingModeMismatchError       billing_mode differs from the agent's
    │   └── AuthError
    │       ├── ApiKeyInvalidError
    │       ├── AgentForcedOfflineError
    │       └── AuthRefreshFailedError         refresh failed; the stale token is kept
    ├── ArtifactError                          download/upload/too large
    │   ├── UploadRejectedError                the upload target refused the file (status)
    │   └── ArtifactSaveError                  save_artifacts saved some, not all (saved, failed)
    ├── ClosedError (also RuntimeError)        use after close()/destroy()
    └── StreamUnavailableError (also RuntimeError)

Foreign errors (pubnub, http.client, json) are translated at the boundary with
``raise ... from exc``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class BlocksError(Exception):
    """Root of every error the SDK raises on purpose."""


class ConfigError(BlocksError, ValueError):
    """A missing or invalid option, environment variable or CDM document."""


class NetworkError(BlocksError, ConnectionError):
    """The backend or the CDM could not be reached (after retries)."""


class CertificateError(ConfigError):
    """A server's TLS certificate does not verify against the trusted certificates.

    Not retried: the same certificate fails the same way. Set ``SSL_CERT_FILE`` to the
    certificate (PEM) of the authority that signed it (``blocks devnet --tls`` prints that
    line; behind a TLS-inspecting proxy it is the proxy's CA).
    """

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class ProxyError(NetworkError):
    """The HTTP proxy (``HTTPS_PROXY``/``HTTP_PROXY``) did not open a tunnel to the server."""

    def __init__(self, message: str, *, proxy: str, status: int | None = None) -> None:
        super().__init__(message)
        self.proxy = proxy
        self.status = status


class BackendError(BlocksError):
    """The backend answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RpcError(BackendError):
    """A JSON-RPC call failed: ``rpc_code`` is the numeric code, ``code`` the wire code."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        rpc_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.rpc_code = rpc_code
        self.details = details or {}


class BillingModeMismatchError(RpcError):
    """``billing_mode`` does not match the agent's registered billing mode.

    Create the TaskClient with ``billing_mode=expected``; the SDK never retries this.
    """

    def __init__(self, message: str, *, expected: str | None, got: str | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.expected = expected
        self.got = got


class AuthError(BackendError):
    """Authentication failed."""


class ApiKeyInvalidError(AuthError):
    """The API key is unknown or revoked: create a new one (``blocks devnet keys create``)."""


class AgentForcedOfflineError(AuthError):
    """An administrator forced the agent offline; it must be re-enabled before reconnecting."""


class AuthRefreshFailedError(AuthError):
    """Token refresh failed repeatedly; the last error is ``__cause__``."""


class ArtifactError(BlocksError):
    """An artifact or file part could not be read, uploaded or downloaded."""


class UploadRejectedError(ArtifactError):
    """The presigned upload target refused the file (``status``: its HTTP status).

    Nothing was stored. Upload the file again (a new request-upload gives a new URL).
    """

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ArtifactSaveError(ArtifactError):
    """``save_artifacts`` could not save some artifacts; every other one was saved.

    ``saved``: the paths written. ``failed``: ``(index, file name, reason)`` of each artifact
    not saved (a failed download, or a name the directory already holds as a directory).
    """

    def __init__(
        self, message: str, *, saved: list[Path], failed: list[tuple[int, str, str]]
    ) -> None:
        super().__init__(message)
        self.saved = saved
        self.failed = failed


class ClosedError(BlocksError, RuntimeError):
    """The object was closed or destroyed; create a new one."""


class StreamUnavailableError(BlocksError, RuntimeError):
    """A stream of a finished task was never opened; its data is gone (streams are live-only)."""

    def __init__(
        self,
        task_id: str,
        stream_id: str,
        declared_stream: str | None,
        terminal_state: str | None,
    ) -> None:
        super().__init__(
            f"stream {stream_id!r} of task {task_id!r} is unavailable: the task ended "
            f"({terminal_state}) before the stream was opened, and stream data is not stored; "
            "read the task's artifacts instead"
        )
        self.task_id = task_id
        self.stream_id = stream_id
        self.declared_stream = declared_stream
        self.terminal_state = terminal_state
