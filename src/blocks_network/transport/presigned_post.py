"""Step 2 of a presigned upload (protocol.md §5.6): POST one file to ``uploadUrl``.

Shared by the consumer's input files and the agent's output artifacts. The target is a
storage service, not the Blocks backend: no token, no affinity header; the URL (and its
form fields) is the authorisation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from blocks_network.errors import NetworkError, UploadRejectedError
from blocks_network.protocol.constants import UPLOAD_TIMEOUT_S
from blocks_network.transport.form_data import encode_form_data
from blocks_network.transport.http_client import HttpClient, HttpResponse

__all__ = ["SUCCESS_STATUSES", "form_fields", "post_file"]

logger = logging.getLogger(__name__)

#: 204 is S3's default, 200/201 what ``success_action_status`` may ask for.
SUCCESS_STATUSES = frozenset({200, 201, 204})
_MAX_REASON_CHARS = 300


def form_fields(value: object) -> list[tuple[str, str]]:
    """The request-upload answer's ``formFields`` (a list of ``{key|name, value}``, or a
    plain mapping) as ordered ``(name, value)`` pairs; anything else gives none."""
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    fields: list[tuple[str, str]] = []
    if isinstance(value, list):
        for entry in value:
            if isinstance(entry, Mapping):
                name = entry.get("key", entry.get("name"))
                if isinstance(name, str):
                    fields.append((name, str(entry.get("value", ""))))
    return fields


def _reason(response: HttpResponse) -> str:
    body = response.json()
    if isinstance(body, Mapping):
        for key in ("message", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])[:_MAX_REASON_CHARS]
    # S3 answers XML; its <Message> is inside the first few hundred characters.
    return response.text.strip()[:_MAX_REASON_CHARS] or "no reason given"


def post_file(
    http: HttpClient,
    upload_url: str,
    fields: object,
    *,
    file_name: str,
    mime_type: str,
    data: bytes,
    timeout: float = UPLOAD_TIMEOUT_S,
) -> None:
    """POST ``data`` as the ``file`` part after ``fields`` (the answer's ``formFields``).

    Raises UploadRejectedError when the target answers anything but 200/201/204 (nothing
    was stored), NetworkError when it cannot be reached.
    """
    body, content_type = encode_form_data(
        form_fields(fields), file_name=file_name, content_type=mime_type, data=data
    )
    try:
        response = http.request(
            "POST", upload_url, body=body, headers={"Content-Type": content_type}, timeout=timeout
        )
    except NetworkError as exc:
        raise NetworkError(
            f"could not upload {file_name!r} to {upload_url}: {exc.__cause__ or exc}"
        ) from exc
    if response.status not in SUCCESS_STATUSES:
        raise UploadRejectedError(
            f"the upload target refused {file_name!r} ({len(data)} bytes) with HTTP "
            f"{response.status}: {_reason(response)}; nothing was stored, upload it again",
            status=response.status,
        )
    logger.debug("posted %s (%d bytes) to the upload target", file_name, len(data))
