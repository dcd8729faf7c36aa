"""Large file inputs and outputs byte for byte; a file message on the task channel;
save_artifacts with hostile names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blocks_network import (
    ArtifactSaveError,
    FileArtifactRef,
    InlineArtifactRef,
    TaskClient,
    download_artifact,
    file_part,
)
from blocks_network.protocol.control import StartTask
from tests.sdk.consumer.responder import Responder, sha256

WAIT = 30.0


def digest_of_input(responder: Responder, task: StartTask) -> None:
    """Downloads the request file and answers its sha256 and size."""
    responder.agent.start(task)
    data = responder.download_input(task)
    responder.publish_inline(task, f"{sha256(data)} {len(data)}".encode())
    responder.agent.finish(task)


def test_large_input_file_is_uploaded_and_arrives_intact(
    client: TaskClient, agent: Responder, tmp_path: Path
) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 7)
    path = tmp_path / "big input.bin"
    path.write_bytes(payload)
    agent.handler = digest_of_input
    # partId "text": the built-in echo card declares only that input.
    parts = [file_part(path, part_id="text", content_type="application/x-test")]
    with client.send_message(agent_name="echo", request_parts=parts) as session:
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        answer = session.download_artifact(session.list_artifacts()[0]).data.decode()
    assert answer == f"{sha256(payload)} {len(payload)}"
    task = agent.tasks[session.task_id]
    ref = task.request_parts[0].artifact_ref
    assert isinstance(ref, FileArtifactRef)
    assert ref.file_name == "big input.bin" and ref.mime_type == "application/x-test"


def test_input_just_over_the_inline_limit_is_uploaded(client: TaskClient, agent: Responder) -> None:
    payload = os.urandom(16_385)
    agent.handler = digest_of_input
    parts = [file_part(payload, part_id="text", file_name="edge.bin")]
    with client.send_message(agent_name="echo", request_parts=parts) as session:
        session.wait_for_terminal(timeout=WAIT)
        answer = session.download_artifact(session.list_artifacts()[0]).data.decode()
    assert answer == f"{sha256(payload)} {len(payload)}"
    assert isinstance(agent.tasks[session.task_id].request_parts[0].artifact_ref, FileArtifactRef)


def test_small_input_goes_inline(client: TaskClient, agent: Responder) -> None:
    agent.handler = lambda r, t: r.agent.complete(t, "ok")
    parts = [file_part(b"\x00\x01\x02", part_id="text", file_name="raw.bin")]
    with client.send_message(agent_name="echo", request_parts=parts) as session:
        session.wait_for_terminal(timeout=WAIT)
    ref = agent.tasks[session.task_id].request_parts[0].artifact_ref
    assert isinstance(ref, InlineArtifactRef) and ref.decode() == b"\x00\x01\x02"


def test_large_output_file_downloads_byte_for_byte(
    client: TaskClient, agent: Responder, tmp_path: Path
) -> None:
    payload = os.urandom(8 * 1024 * 1024 + 3)

    def big_output(responder: Responder, task: StartTask) -> None:
        responder.agent.start(task)
        responder.upload_output(task, payload, "result.bin", "application/octet-stream")
        responder.publish_inline(task, b"small")
        responder.agent.finish(task)

    agent.handler = big_output
    with client.send_message(
        agent_name="echo", request_parts=[{"partId": "text", "text": "go"}]
    ) as session:
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        file_ref, _inline = session.list_artifacts()
        assert isinstance(file_ref, FileArtifactRef) and file_ref.size == len(payload)
        downloaded = session.download_artifact(file_ref)
        assert downloaded.data == payload
        assert downloaded.file_name == "result.bin"
        # The standalone form, with any client holding the task's read token.
        assert download_artifact(file_ref.to_wire(), session._client()).data == payload
        paths = session.save_artifacts(tmp_path / "out")
    assert [p.name for p in paths] == ["result.bin", "artifact-1"]
    assert paths[0].read_bytes() == payload and paths[1].read_bytes() == b"small"


def test_a_file_message_on_the_task_channel_does_not_stop_delivery(
    client: TaskClient, agent: Responder
) -> None:
    def with_file_event(responder: Responder, task: StartTask) -> None:
        responder.agent.start(task)
        responder.send_file_event(task, b"a note")
        responder.progress(task, "after the file")
        responder.agent.complete(task, "still here")

    agent.handler = with_file_event
    with client.send_message(
        agent_name="echo", request_parts=[{"partId": "text", "text": "f"}]
    ) as session:
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        assert "after the file" in [e.message for e in session.events]
        assert session.download_artifact(session.list_artifacts()[0]).data == b"still here"


def test_save_artifacts_names_hostile_artifacts_safely_and_saves_the_rest(
    client: TaskClient, agent: Responder, tmp_path: Path
) -> None:
    names = ["ok.txt", "a\x00b.txt", "n" * 300 + ".txt", "../x", "", "taken", "ok.txt"]

    def named(responder: Responder, task: StartTask) -> None:
        responder.agent.start(task)
        for index, name in enumerate(names):
            responder.publish_inline(task, f"#{index}".encode(), file_name=name)
        responder.agent.finish(task)

    agent.handler = named
    out = tmp_path / "out"
    (out / "taken").mkdir(parents=True)
    with client.send_message(
        agent_name="echo", request_parts=[{"partId": "text", "text": "go"}]
    ) as session:
        assert session.wait_for_terminal(timeout=WAIT).state == "completed"
        with pytest.raises(ArtifactSaveError, match="1 of 7 artifacts were not saved") as error:
            session.save_artifacts(out)
    assert [(index, name) for index, name, _ in error.value.failed] == [(5, "taken")]
    long_name = "n" * 251 + ".txt"
    expected = ["ok.txt", "a_b.txt", long_name, "x", "artifact-4", "ok-6.txt"]
    assert [p.name for p in error.value.saved] == expected
    contents = {p.name: p.read_bytes() for p in error.value.saved}
    assert contents == dict(zip(expected, [b"#0", b"#1", b"#2", b"#3", b"#4", b"#6"], strict=True))
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "taken"])
    assert list((out / "taken").iterdir()) == []
