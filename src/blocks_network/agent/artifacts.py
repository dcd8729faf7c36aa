"""Agent-side artifacts (protocol §5.6, §7): inline events, presigned uploads, input downloads.

An artifact up to the inline limit (``ARTIFACT_INLINE_LIMIT_BYTES``, default 16 384) travels
base64 inside an ``artifact`` event; a larger one (up to 25 MiB) is uploaded through the
backend's presigned ``provider-output`` flow, after which the backend itself publishes the
``artifact`` event with a file reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from blocks_network.auth.agent_auth import AgentAuth
from blocks_network.consumer.artifacts import DownloadedArtifact
from blocks_network.errors import ArtifactError, BlocksError
from blocks_network.protocol.artifacts import (
    DEFAULT_MIME_TYPE,
    ArtifactRef,
    FileArtifactRef,
    InlineArtifactRef,
    parse_artifact_ref,
)
from blocks_network.protocol.constants import (
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
    MAX_UPLOAD_BYTES,
    UPLOAD_ROLE_PROVIDER_OUTPUT,
)
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.parts import RequestPart
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.presigned_post import post_file

__all__ = [
    "ArtifactUploader",
    "PreparedArtifact",
    "artifact_bytes",
    "decode_input",
    "download_input",
    "prepare_artifacts",
]

logger = logging.getLogger(__name__)

_MIB: Final = 1024 * 1024
_VALID_RESULTS: Final = (
    'return {"artifacts": [{"data": ..., "mimeType": ...}]}, or None for no artifacts'
)


def artifact_bytes(data: object, where: str) -> bytes:
    """``str`` → UTF-8, ``bytes``/``bytearray`` as is; anything else raises ArtifactError."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise ArtifactError(f"{where} must be str or bytes, got {type(data).__name__}")


@dataclass(frozen=True)
class PreparedArtifact:
    """One artifact of a handler's result, checked and converted to bytes."""

    data: bytes
    mime_type: str | None
    file_name: str | None
    output_id: str | None


def _opt_str_key(entry: Mapping[str, Any], keys: tuple[str, ...], where: str) -> str | None:
    for key in keys:
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ArtifactError(f"{where}.{key} must be a string, got {type(value).__name__}")
        return value
    return None


def prepare_artifacts(result: object) -> list[PreparedArtifact]:
    """Check a handler's return value; raise ArtifactError saying what is wrong.

    Valid: None, ``{}``, or a mapping with an ``artifacts`` list (or None) of
    ``{data: str|bytes, mimeType?, fileName?, outputId?}`` (snake_case keys accepted too).
    A non-empty mapping without ``artifacts`` (``{"data": "x"}``) is refused: it is almost
    always an artifact that was not wrapped, and would complete with nothing.
    """
    if result is None:
        return []
    if not isinstance(result, Mapping):
        raise ArtifactError(f"handler returned {type(result).__name__}; {_VALID_RESULTS}")
    if result and "artifacts" not in result:
        keys = ", ".join(sorted(str(key) for key in result))
        raise ArtifactError(
            f'handler returned a dict without "artifacts" (keys: {keys}); {_VALID_RESULTS}'
        )
    artifacts = result.get("artifacts")
    if artifacts is None:
        return []
    if not isinstance(artifacts, (list, tuple)):
        raise ArtifactError(
            f'handler result "artifacts" must be a list, got {type(artifacts).__name__}'
        )
    prepared: list[PreparedArtifact] = []
    for index, entry in enumerate(artifacts):
        where = f"artifacts[{index}]"
        if not isinstance(entry, Mapping):
            raise ArtifactError(
                f"handler result {where} must be an object {{data, mimeType}}, "
                f"got {type(entry).__name__}"
            )
        if entry.get("data") is None:
            raise ArtifactError(f"handler result {where} has no data")
        data = artifact_bytes(entry["data"], f"handler result {where}.data")
        if len(data) > MAX_UPLOAD_BYTES:
            raise ArtifactError(
                f"handler result {where} is {len(data)} bytes; artifacts are limited to "
                f"{MAX_UPLOAD_BYTES} bytes (25 MiB)"
            )
        prepared.append(
            PreparedArtifact(
                data=data,
                mime_type=_opt_str_key(entry, ("mimeType", "mime_type"), f"handler result {where}"),
                file_name=_opt_str_key(entry, ("fileName", "file_name"), f"handler result {where}"),
                output_id=_opt_str_key(entry, ("outputId", "output_id"), f"handler result {where}"),
            )
        )
    return prepared


def _error_message(body: object, fallback: str) -> str:
    if isinstance(body, Mapping):
        for key in ("error", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return fallback


class ArtifactUploader:
    """Uploads large artifacts through the backend (request → POST → confirm). Thread-safe."""

    def __init__(self, http: HttpClient, auth: AgentAuth | None) -> None:
        self._http = http
        self._auth = auth

    def upload(
        self,
        task_id: str,
        data: bytes,
        *,
        mime_type: str,
        file_name: str,
        output_id: str | None,
    ) -> ArtifactRef:
        """Upload ``data`` as a provider output of ``task_id``; returns its file reference.

        Blocks for the upload. The backend publishes the ``artifact`` event on confirm.
        Raises ArtifactError when there is no backend, the file is too large, or a step fails.
        """
        if self._auth is None:
            raise ArtifactError("base_url is required for artifacts larger than 16 KB")
        if len(data) > MAX_UPLOAD_BYTES:
            raise ArtifactError(
                f"artifact of {len(data)} bytes is over the {MAX_UPLOAD_BYTES // _MIB} MiB limit"
            )
        request: dict[str, Any] = {
            "role": UPLOAD_ROLE_PROVIDER_OUTPUT,
            "taskId": task_id,
            "fileName": file_name,
            "fileSize": len(data),
            "mimeType": mime_type,
        }
        if output_id is not None:
            request["outputId"] = output_id
        try:
            answer = self._auth.request("POST", API_PATH_FILES_REQUEST_UPLOAD, json_body=request)
            body = answer.json()
            if answer.status >= 300 or not isinstance(body, Mapping) or "error" in body:
                raise ArtifactError(
                    f"upload request for {file_name!r} failed (HTTP {answer.status}): "
                    f"{_error_message(body, answer.text[:200])}"
                )
            upload_id, upload_url = body.get("uploadId"), body.get("uploadUrl")
            if not isinstance(upload_id, str) or not isinstance(upload_url, str):
                raise ArtifactError("upload request answered without uploadId/uploadUrl")
            post_file(
                self._http,
                upload_url,
                body.get("formFields"),
                file_name=file_name,
                mime_type=mime_type,
                data=data,
            )
            confirmed = self._auth.request(
                "POST", API_PATH_FILES_CONFIRM_UPLOAD, json_body={"uploadId": upload_id}
            )
            done = confirmed.json()
            if confirmed.status >= 300 or not isinstance(done, Mapping) or "error" in done:
                raise ArtifactError(
                    f"confirming the upload of {file_name!r} failed (HTTP {confirmed.status}): "
                    f"{_error_message(done, confirmed.text[:200])}"
                )
            ref = done.get("artifactRef")
            if ref is None:
                return _fallback_ref(upload_id, data, mime_type, file_name)
            parsed = parse_artifact_ref(ref)
            if parsed.size != len(data):
                # A stored file of another size is a damaged artifact: fail, never complete.
                raise ArtifactError(
                    f"the upload target stored {parsed.size} of the {len(data)} bytes of "
                    f"{file_name!r}; the artifact is damaged, upload it again"
                )
            return parsed
        except ArtifactError:
            raise
        except ProtocolError as exc:
            raise ArtifactError(f"the backend's artifact reference is malformed: {exc}") from exc
        except BlocksError as exc:
            raise ArtifactError(f"uploading {file_name!r} failed: {exc}") from exc


def _fallback_ref(upload_id: str, data: bytes, mime_type: str, file_name: str) -> ArtifactRef:
    # A backend that answers confirm without the ref still published the event itself.
    return FileArtifactRef(
        channel="", file_id=upload_id, size=len(data), mime_type=mime_type, file_name=file_name
    )


def decode_input(part: object) -> ArtifactRef:
    """The ArtifactRef of a request part (wire dict or RequestPart); raises ArtifactError."""
    try:
        parsed = part if isinstance(part, RequestPart) else RequestPart.from_wire(part)
    except ProtocolError as exc:
        raise ArtifactError(f"not a request part: {exc}") from exc
    if parsed.artifact_ref is None:
        raise ArtifactError(
            f"request part {parsed.part_id or '(no partId)'} carries no artifact (artifactRef)"
        )
    return parsed.artifact_ref


def download_input(
    part: object, download_file: Callable[[FileArtifactRef], bytes]
) -> DownloadedArtifact:
    """Bytes of a request part's artifact: inline decoded here, file via ``download_file``."""
    ref = decode_input(part)
    if isinstance(ref, InlineArtifactRef):
        try:
            data = ref.decode()
        except ProtocolError as exc:
            raise ArtifactError(f"inline input artifact is not valid base64: {exc}") from exc
        return DownloadedArtifact(data, ref.mime_type or DEFAULT_MIME_TYPE, ref.file_name)
    return DownloadedArtifact(download_file(ref), ref.mime_type or DEFAULT_MIME_TYPE, ref.file_name)
