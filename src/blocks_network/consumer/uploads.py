"""Presigned upload of a large consumer input file (§5.6, role ``consumer-input``).

Three steps: ``request-upload`` (the first file of a message opens an upload session with
``agentName``; later files join it with ``uploadSessionId``), a ``multipart/form-data`` POST
of the bytes to ``uploadUrl`` (form fields first, then ``file``), and ``confirm-upload``.
SendMessage then carries the session id and the backend attaches the files to the parts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blocks_network.auth.token_sources import error_text
from blocks_network.consumer.backend import BackendClient
from blocks_network.errors import ArtifactError, NetworkError
from blocks_network.protocol.constants import (
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
    MAX_UPLOAD_BYTES,
    UPLOAD_FORM_BOUNDARY,
    UPLOAD_ROLE_CONSUMER_INPUT,
    UPLOAD_TIMEOUT_S,
)
from blocks_network.transport.http_client import HttpResponse

__all__ = ["InputUploader", "encode_form"]

logger = logging.getLogger(__name__)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def encode_form(
    fields: Sequence[tuple[str, str]], file_name: str, content_type: str, data: bytes
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (fields, then ``file``) and its Content-Type header."""
    dash = f"--{UPLOAD_FORM_BOUNDARY}".encode()
    chunks: list[bytes] = []
    for name, value in fields:
        chunks += [
            dash,
            b"\r\n",
            f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode(),
            value.encode(),
            b"\r\n",
        ]
    chunks += [
        dash,
        b"\r\n",
        f'Content-Disposition: form-data; name="file"; filename="{_quote(file_name)}"\r\n'.encode(),
        f"Content-Type: {content_type}\r\n\r\n".encode(),
        data,
        b"\r\n",
        dash,
        b"--\r\n",
    ]
    return b"".join(chunks), f"multipart/form-data; boundary={UPLOAD_FORM_BOUNDARY}"


def _form_fields(value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    fields: list[tuple[str, str]] = []
    if isinstance(value, list):
        for entry in value:
            if isinstance(entry, Mapping):
                key = entry.get("key", entry.get("name"))
                if isinstance(key, str):
                    fields.append((key, str(entry.get("value", ""))))
    return fields


@dataclass
class InputUploader:
    """Uploads the large files of one SendMessage; remembers the upload session id."""

    backend: BackendClient
    agent_name: str
    upload_session_id: str | None = None

    def upload(self, data: bytes, *, file_name: str, mime_type: str, part_id: str) -> str:
        """Upload ``data`` for part ``part_id`` (blocking); returns the upload session id.

        Raises ArtifactError when a step is refused or the file exceeds 25 MiB, NetworkError
        when the backend or the upload target cannot be reached.
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
        payload, content_type = encode_form(
            _form_fields(answer.get("formFields")), file_name, mime_type, data
        )
        try:
            # The presigned target is not the Blocks backend: no token, no affinity header.
            response = self.backend.http.request(
                "POST",
                upload_url,
                body=payload,
                headers={"Content-Type": content_type},
                timeout=UPLOAD_TIMEOUT_S,
            )
        except NetworkError as exc:
            raise NetworkError(
                f"could not upload {file_name!r} to {upload_url}: {exc.__cause__ or exc}"
            ) from exc
        if response.status not in (200, 201, 204):
            message, _ = error_text(response)
            raise ArtifactError(
                f"uploading {file_name!r} failed with HTTP {response.status}: {message}"
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
