"""Presigned uploads (§5.6): consumer inputs attached to a task, provider outputs as artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network.errors import UploadRejectedError
from blocks_network.protocol.artifacts import FileArtifactRef
from blocks_network.protocol.constants import (
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
    MAX_UPLOAD_BYTES,
)
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.presigned_post import post_file
from tests.support.backend_client import Reply
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent

INPUTS = {
    "inputs": [
        {"id": "text", "description": "Prompt.", "contentType": "text/plain", "required": True},
        {
            "id": "doc",
            "description": "A document.",
            "contentType": "application/octet-stream",
            "required": False,
        },
    ],
    "outputs": [{"id": "result", "contentType": "text/plain", "guaranteed": True}],
}


@pytest.fixture
def agent(net: LocalNetwork) -> Iterator[FakeAgent]:
    register_agent(net, "filer", io=INPUTS)
    fake = FakeAgent(net, "filer", concurrency=0)
    yield fake
    fake.stop()


def request_upload(consumer: Consumer, token: str, **body: Any) -> Reply:
    body.setdefault("mimeType", "application/octet-stream")
    return consumer.api.post(API_PATH_FILES_REQUEST_UPLOAD, body, token=token)


def upload(reply: Reply, name: str, data: bytes) -> None:
    fields = {f["key"]: f["value"] for f in reply.body["formFields"]}
    response = httpx.post(
        reply.body["uploadUrl"],
        data=fields,
        files={"file": (name, data, "application/octet-stream")},
    )
    assert response.status_code in (200, 204), response.text


def confirm(consumer: Consumer, token: str, upload_id: str) -> Reply:
    return consumer.api.post(API_PATH_FILES_CONFIRM_UPLOAD, {"uploadId": upload_id}, token=token)


def download(consumer: Consumer, result: dict[str, Any], ref: dict[str, Any]) -> bytes:
    client = consumer.reader(result)
    try:
        envelope = (
            client.download_file()
            .channel(ref["channel"])
            .file_id(ref["fileId"])
            .file_name(ref["fileName"])
            .sync()
        )
        return bytes(envelope.result.data)
    finally:
        client.stop()


def test_provider_output_upload_publishes_the_artifact(
    consumer: Consumer, agent: FakeAgent
) -> None:
    result = consumer.send("filer")
    task = agent.next_start()
    data = bytes(range(256)) * 100
    reply = request_upload(
        consumer,
        agent.access_token,
        role="provider-output",
        fileName="out.bin",
        fileSize=len(data),
        taskId=task.task_id,
        outputId="result",
    )
    assert reply.status == 200, reply.body
    assert "uploadSessionId" not in reply.body and reply.body["uploadId"]
    upload(reply, "out.bin", data)
    confirmed = confirm(consumer, agent.access_token, reply.body["uploadId"])
    assert confirmed.status == 200, confirmed.body
    ref = confirmed.body["artifactRef"]
    assert ref["kind"] == "file" and ref["fileName"] == "out.bin" and ref["size"] == len(data)
    assert ref["channel"] == result["extensions"]["blocks"]["streamChannels"]["status"]
    artifacts = [m for m in consumer.history(result) if m["type"] == "artifact"]
    assert len(artifacts) == 1
    assert artifacts[0]["artifactRef"] == ref and artifacts[0]["outputId"] == "result"
    assert download(consumer, result, ref) == data
    # Confirming twice is harmless and publishes nothing more.
    assert confirm(consumer, agent.access_token, reply.body["uploadId"]).body["artifactRef"] == ref
    assert len([m for m in consumer.history(result) if m["type"] == "artifact"]) == 1


def test_consumer_input_uploads_are_attached_to_the_task(
    consumer: Consumer, agent: FakeAgent
) -> None:
    first = request_upload(
        consumer,
        consumer.token,
        role="consumer-input",
        agentName="filer",
        partId="doc",
        fileName="a.bin",
        fileSize=5,
    )
    assert first.status == 200, first.body
    session = first.body["uploadSessionId"]
    second = request_upload(
        consumer,
        consumer.token,
        role="consumer-input",
        uploadSessionId=session,
        partId="doc",
        fileName="b.bin",
        fileSize=3,
    )
    assert second.status == 200 and second.body["uploadSessionId"] == session
    upload(first, "a.bin", b"hello")
    upload(second, "b.bin", b"abc")
    assert confirm(consumer, consumer.token, first.body["uploadId"]).body == {
        "uploadId": first.body["uploadId"]
    }
    confirm(consumer, consumer.token, second.body["uploadId"])

    result = consumer.send(
        "filer",
        uploadSessionId=session,
        requestParts=[
            {"partId": "text", "text": "summarise"},
            {"partId": "doc", "contentType": "application/octet-stream"},
            {"partId": "doc", "contentType": "application/octet-stream"},
        ],
    )
    task = agent.next_start()
    refs = [p.artifact_ref for p in task.request_parts if p.artifact_ref is not None]
    assert [r.file_name for r in refs if isinstance(r, FileArtifactRef)] == ["a.bin", "b.bin"]
    status = result["extensions"]["blocks"]["streamChannels"]["status"]
    assert all(isinstance(r, FileArtifactRef) and r.channel == status for r in refs)
    wire_refs = [r.to_wire() for r in refs]
    assert [download(consumer, result, r) for r in wire_refs] == [b"hello", b"abc"]
    assert consumer.history(result)[0]["requestParts"][1]["artifactRef"] == wire_refs[0]
    # One session feeds one task.
    error = consumer.error(
        "SendMessage",
        {
            "agentName": "filer",
            "billingMode": "free",
            "uploadSessionId": session,
            "requestParts": [{"partId": "text", "text": "x"}],
        },
    )
    assert error["data"]["code"] == "TASK_CONFLICT"


def test_unconfirmed_upload_blocks_send_message(consumer: Consumer, agent: FakeAgent) -> None:
    reply = request_upload(
        consumer,
        consumer.token,
        role="consumer-input",
        agentName="filer",
        partId="doc",
        fileName="a.bin",
        fileSize=1,
    )
    error = consumer.error(
        "SendMessage",
        {
            "agentName": "filer",
            "billingMode": "free",
            "uploadSessionId": reply.body["uploadSessionId"],
            "requestParts": [{"partId": "text", "text": "x"}, {"partId": "doc"}],
        },
    )
    assert "not confirmed" in error["data"]["message"]
    assert consumer.call("ListTasks")["totalCount"] == 0


def test_upload_refusals(net: LocalNetwork, consumer: Consumer, agent: FakeAgent) -> None:
    too_big = request_upload(
        consumer,
        consumer.token,
        role="consumer-input",
        agentName="filer",
        partId="doc",
        fileName="a.bin",
        fileSize=MAX_UPLOAD_BYTES + 1,
    )
    assert too_big.status == 413 and str(MAX_UPLOAD_BYTES) in too_big.body["message"]
    for name in ("../etc/passwd", "a/b", "", "x\x00y"):
        reply = request_upload(
            consumer,
            consumer.token,
            role="consumer-input",
            agentName="filer",
            partId="doc",
            fileName=name,
            fileSize=1,
        )
        assert reply.status == 400, name
    assert (
        request_upload(consumer, consumer.token, role="weird", fileName="a", fileSize=1).status
        == 400
    )
    assert (
        request_upload(
            consumer,
            consumer.token,
            role="consumer-input",
            agentName="filer",
            partId="doc",
            fileName="a",
            fileSize=-1,
        ).status
        == 400
    )
    assert (
        request_upload(
            consumer,
            consumer.token,
            role="consumer-input",
            agentName="filer",
            partId="nope",
            fileName="a",
            fileSize=1,
        ).status
        == 400
    )
    assert (
        request_upload(
            consumer,
            consumer.token,
            role="consumer-input",
            agentName="ghost",
            partId="doc",
            fileName="a",
            fileSize=1,
        ).status
        == 404
    )
    assert (
        consumer.api.post(API_PATH_FILES_REQUEST_UPLOAD, {"role": "consumer-input"}).status == 401
    )
    assert (
        consumer.api.post(API_PATH_FILES_REQUEST_UPLOAD, raw=b"{oops", token=consumer.token).status
        == 400
    )

    consumer.send("filer")
    task = agent.next_start()
    as_consumer = request_upload(
        consumer,
        consumer.token,
        role="provider-output",
        fileName="o",
        fileSize=1,
        taskId=task.task_id,
    )
    assert as_consumer.status == 403
    other = FakeAgent(net, "filer")
    try:
        wrong_instance = request_upload(
            consumer,
            other.access_token,
            role="provider-output",
            fileName="o",
            fileSize=1,
            taskId=task.task_id,
        )
        assert wrong_instance.status == 403
    finally:
        other.stop()
    pending = request_upload(
        consumer,
        agent.access_token,
        role="provider-output",
        fileName="o",
        fileSize=1,
        taskId=task.task_id,
    )
    early = confirm(consumer, agent.access_token, pending.body["uploadId"])
    assert early.status == 409 and early.code == "UPLOAD_INCOMPLETE"
    assert confirm(consumer, consumer.token, pending.body["uploadId"]).status == 404
    assert confirm(consumer, agent.access_token, "nope").status == 404


def test_upload_of_another_size_than_declared_is_refused_and_stores_nothing(
    consumer: Consumer, agent: FakeAgent
) -> None:
    declared = b"0123456789"
    reply = request_upload(
        consumer,
        consumer.token,
        role="consumer-input",
        agentName="filer",
        partId="doc",
        fileName="a.bin",
        fileSize=len(declared),
    )
    assert reply.status == 200, reply.body
    http = HttpClient()

    def post(data: bytes) -> None:
        post_file(
            http,
            reply.body["uploadUrl"],
            reply.body["formFields"],
            file_name="a.bin",
            mime_type="application/octet-stream",
            data=data,
        )

    try:
        for sent, says in [
            (declared[:5], "IncompleteBody: received 5 bytes but this upload declared 10"),
            (b"", "IncompleteBody: received 0 bytes"),
            (declared + b"!", "EntityTooLarge"),
        ]:
            with pytest.raises(UploadRejectedError, match=says) as refused:
                post(sent)
            assert refused.value.status == 400
        early = confirm(consumer, consumer.token, reply.body["uploadId"])
        assert early.status == 409 and early.code == "UPLOAD_INCOMPLETE"
        post(declared)  # nothing was half-stored: the same URL still takes the whole file
    finally:
        http.close()
    assert confirm(consumer, consumer.token, reply.body["uploadId"]).status == 200
