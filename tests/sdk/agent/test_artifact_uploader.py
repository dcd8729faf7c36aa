"""The agent's uploader against a scripted storage service that misbehaves (protocol §5.6).

The local network refuses a size other than the declared one; a hosted storage service
might not, so the SDK checks the stored size itself and types the target's refusals.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from blocks_network.agent.artifacts import ArtifactUploader
from blocks_network.auth.agent_auth import AgentAuth
from blocks_network.errors import ArtifactError, UploadRejectedError
from blocks_network.protocol.constants import (
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
)
from blocks_network.transport.http_client import HttpClient, HttpResponse
from tests.sdk.stub_server import Recorded, StubServer, stub_server

DATA = b"\r\n--0123456789abcdef\r\n" * 1000


class StubBackend:
    """Stands in for AgentAuth: forwards backend requests to the stub, without a token."""

    def __init__(self, server: StubServer, http: HttpClient) -> None:
        self._server = server
        self._http = http

    def request(self, method: str, path: str, *, json_body: Any = None) -> HttpResponse:
        return self._http.request(method, self._server.url + path, json_body=json_body)


def upload_with(upload_status: int, stored_size: int) -> list[Recorded]:
    """Upload DATA through a stub answering the POST with ``upload_status`` and confirming
    a file of ``stored_size`` bytes; returns the requests the stub saw."""

    def respond(request: Recorded) -> tuple[int, Any]:
        if request.path == API_PATH_FILES_REQUEST_UPLOAD:
            url = f"http://{request.headers['Host']}/put"
            return 200, {"uploadId": "u1", "uploadUrl": url, "formFields": []}
        if request.path == "/put":
            return upload_status, {"message": "EntityTooSmall: your proposed upload is smaller"}
        assert request.path == API_PATH_FILES_CONFIRM_UPLOAD
        ref = {"kind": "file", "channel": "u.o.t", "fileId": "f1", "size": stored_size}
        return 200, {"uploadId": "u1", "artifactRef": {**ref, "mimeType": "x/y"}}

    http = HttpClient()
    try:
        with stub_server(respond) as server:
            uploader = ArtifactUploader(http, cast(AgentAuth, StubBackend(server, http)))
            try:
                uploader.upload("t1", DATA, mime_type="x/y", file_name="f.bin", output_id=None)
            finally:
                requests = list(server.requests)
    finally:
        http.close()
    return requests


def test_a_stored_size_other_than_sent_fails_the_upload() -> None:
    with pytest.raises(ArtifactError, match=f"stored 100 of the {len(DATA)} bytes"):
        upload_with(204, 100)


def test_the_whole_file_is_accepted() -> None:
    requests = upload_with(204, len(DATA))
    posted = requests[1]
    assert posted.path == "/put" and DATA in posted.body
    assert posted.headers["Content-Type"].startswith("multipart/form-data; boundary=")


def test_a_refusal_of_the_target_is_typed() -> None:
    with pytest.raises(UploadRejectedError, match="HTTP 400: EntityTooSmall") as refused:
        upload_with(400, len(DATA))
    assert refused.value.status == 400
