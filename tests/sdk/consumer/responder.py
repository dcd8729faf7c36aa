"""An agent stand-in for consumer tests: answers StartTask like the built-in echo agent.

Built on ``tests.support.fake_agent.FakeAgent`` (connect, control subscription, presence,
publishes with each task's write token). Tests swap :attr:`Responder.handler` (and
:attr:`Responder.on_control` for CancelTask & co) to script other agents: many events, file outputs, duplicate
terminals, silence.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import Any

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.artifacts import FileArtifactRef, InlineArtifactRef
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.constants import (
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
    UPLOAD_ROLE_PROVIDER_OUTPUT,
)
from blocks_network.protocol.control import StartTask
from blocks_network.protocol.events import ArtifactEvent, ProgressMessage
from blocks_network.transport.form_data import encode_form_data
from blocks_network.transport.http_client import HttpClient
from tests.support.fake_agent import FakeAgent

Handler = Callable[["Responder", StartTask], None]


def echo_text(task: StartTask) -> str:
    """What the built-in echo handler answers (protocol §9.7)."""
    for part in task.request_parts:
        if part.text is not None:
            return "Echoed request: " + part.text
    return repr([p.to_wire() for p in task.request_parts])


def echo(responder: Responder, task: StartTask) -> None:
    responder.agent.complete(task, echo_text(task))


def silent(responder: Responder, task: StartTask) -> None:
    """Never answers: the task stays running."""
    responder.agent.start(task)


class Responder:
    """Plays ``agent_name`` until :meth:`stop`; every StartTask goes to :attr:`handler`."""

    def __init__(self, network: LocalNetwork, agent_name: str = "echo", **agent_options: Any):
        agent_options.setdefault("concurrency", 64)
        self.network = network
        self.agent = FakeAgent(network, agent_name, **agent_options)
        self.handler: Handler = echo
        self.on_control: Callable[[Responder, Any], None] | None = None
        self.tasks: dict[str, StartTask] = {}
        self.started: queue.Queue[StartTask] = queue.Queue()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"test-responder-{agent_name}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message, _meta = self.agent.next_control(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if isinstance(message, StartTask):
                    self.tasks[message.task_id] = message
                    self.handler(self, message)
                    self.started.put(message)
                elif message is not None and self.on_control is not None:
                    self.on_control(self, message)
            except BaseException as exc:  # surfaced by tests through .errors
                self.errors.append(exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.agent.stop()

    # --- helpers for handlers --------------------------------------------------------------

    def progress(self, task: StartTask, message: str) -> None:
        self.agent.publish(task, ProgressMessage(task.task_id, message).to_wire())

    def publish_inline(
        self, task: StartTask, data: bytes, mime: str = "text/plain", file_name: str | None = None
    ) -> None:
        ref = InlineArtifactRef.from_bytes(data, mime_type=mime, file_name=file_name)
        self.agent.publish(task, ArtifactEvent(task.task_id, ref).to_wire())

    def download_input(self, task: StartTask) -> bytes:
        """The first request part's file, downloaded with the task's write token."""
        ref = task.request_parts[0].artifact_ref
        assert isinstance(ref, FileArtifactRef), ref
        assert task.write_token is not None
        self.agent.publisher.set_token(task.write_token)
        envelope = (
            self.agent.publisher.download_file()
            .channel(ref.channel)
            .file_id(ref.file_id)
            .file_name(ref.file_name)
            .sync()
        )
        return bytes(envelope.result.data)

    def upload_output(self, task: StartTask, data: bytes, file_name: str, mime: str) -> None:
        """A provider-output upload; confirming it makes the backend publish the artifact."""
        http = HttpClient()
        headers = {
            "Authorization": f"Bearer {self.agent.access_token}",
            PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION,
        }
        try:
            answer = http.request(
                "POST",
                self.network.url + API_PATH_FILES_REQUEST_UPLOAD,
                json_body={
                    "role": UPLOAD_ROLE_PROVIDER_OUTPUT,
                    "taskId": task.task_id,
                    "fileName": file_name,
                    "fileSize": len(data),
                    "mimeType": mime,
                },
                headers=headers,
            ).json()
            fields = [(f["key"], f["value"]) for f in answer["formFields"]]
            body, content_type = encode_form_data(
                fields, file_name=file_name, content_type=mime, data=data
            )
            status = http.request(
                "POST", answer["uploadUrl"], body=body, headers={"Content-Type": content_type}
            ).status
            assert status in (200, 204), status
            confirm = http.request(
                "POST",
                self.network.url + API_PATH_FILES_CONFIRM_UPLOAD,
                json_body={"uploadId": answer["uploadId"]},
                headers=headers,
            )
            assert confirm.status == 200, confirm.text
        finally:
            http.close()

    def send_file_event(self, task: StartTask, data: bytes) -> None:
        """A PubNub file message on the task channel (what kills the official client's
        delivery without the SDK's workaround)."""
        assert task.write_token is not None
        self.agent.publisher.set_token(task.write_token)
        (
            self.agent.publisher.send_file()
            .channel(task_channel(task.resolved_org_id, task.task_id))
            .file_name("note.txt")
            .file_object(data)
            .sync()
        )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
