"""Presigned upload of a large consumer input file (§5.6, role ``consumer-input``).

Three steps: ``request-upload`` (the first file of a message opens an upload session with
``agentName``; later files join it with ``uploadSessionId``), a ``multipart/form-data`` POST
of the bytes to ``uploadUrl`` (:func:`~blocks_network.transport.presigned_post.post_file`),
and ``confirm-upload``.
SendMessage then carries the session id and the backend attaches the files to the parts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blocks_network.auth.token_sources import error_text
from blocks_network.consumer.backend import BackendClient
from blocks_network.errors import ArtifactError
from blocks_network.protocol.constants import (
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
    MAX_UPLOAD_BYTES,
    UPLOAD_ROLE_CONSUMER_INPUT,
)
from blocks_network.transport.http_client import HttpResponse
from blocks_network.transport.presigned_post import post_file

__all__ = ["InputUploader"]

logger = logging.getLogger(__name__)


@dataclass
class InputUploader:
    """Uploads the large files of one SendMessage; remembers the upload session id."""

    backend: BackendClient
    agent_name: str
    upload_session_id: str | None = None

    def upload(self, data: bytes, *, file_name: str, mime_type: str, part_id: str) -> str:
        """Upload ``data`` for part ``part_id`` (blocking); returns the upload session id.

        Raises ArtifactError when a step is refused or the file exceeds 25 MiB (its subclass
        UploadRejectedError when the upload target refuses the bytes), NetworkError when the
        backend or the upload target cannot be reached.
        """
        if len(data) > MAX_UPLOAD_BYTES:
            raise ArtifactError(
                f"file {file_name!r} is {len(data)} bytes; uploads are limited to "
                f"{MAX_UPLOAD_BYTES} bytes (25 MiB): send a smaller file or a link to it"
            )
        body: dict[str, Any] = {
            "role": UPLOAD_ROLE_CONSUMER_INPUT,
            "fileName": file_name,
            "fileSize": len(data),
            "mimeType": mime_type,
            "partId": part_id,
        }
        if self.upload_session_id:
            body["uploadSessionId"] = self.upload_session_id
        else:
            body["agentName"] = self.agent_name
        answer = self._json(
            self.backend.request("POST", API_PATH_FILES_REQUEST_UPLOAD, json_body=body),
            "request-upload",
            file_name,
        )
        upload_id, upload_url = answer.get("uploadId"), answer.get("uploadUrl")
        if not isinstance(upload_id, str) or not isinstance(upload_url, str):
            raise ArtifactError(
                f"request-upload for {file_name!r} returned no uploadId/uploadUrl: {answer!r}"
            )
        session_id = answer.get("uploadSessionId")
        if isinstance(session_id, str) and session_id:
            self.upload_session_id = session_id
        post_file(
            self.backend.http,
            upload_url,
            answer.get("formFields"),
            file_name=file_name,
            mime_type=mime_type,
            data=data,
        )
        self._json(
            self.backend.request(
                "POST", API_PATH_FILES_CONFIRM_UPLOAD, json_body={"uploadId": upload_id}
            ),
            "confirm-upload",
            file_name,
        )
        if self.upload_session_id is None:
            raise ArtifactError(f"request-upload for {file_name!r} returned no uploadSessionId")
        logger.debug("uploaded %s (%d bytes) for part %s", file_name, len(data), part_id)
        return self.upload_session_id

    @staticmethod
    def _json(response: HttpResponse, step: str, file_name: str) -> Mapping[str, Any]:
        body = response.json()
        if not 200 <= response.status < 300 or (isinstance(body, Mapping) and body.get("error")):
            message, code = error_text(response)
            raise ArtifactError(
                f"{step} for {file_name!r} failed with HTTP {response.status}"
                f"{f' ({code})' if code else ''}: {message}"
            )
        if not isinstance(body, Mapping):
            raise ArtifactError(f"{step} for {file_name!r} did not return a JSON object")
        return body
