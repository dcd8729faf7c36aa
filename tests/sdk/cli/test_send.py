"""``blocks send``: results on stdout, progress on stderr, exit codes, files, streams."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from blocks_network.testing import AgentRunner
from blocks_network.types import StartTaskMessage, TaskContext
from tests.support.backend_client import make_card

from .conftest import Runner


def echo_handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    text = next((p["text"] for p in task.request_parts if "text" in p), "")
    return {"artifacts": [{"data": f"Echoed request: {text}", "mimeType": "text/plain"}]}


def test_completed_task_prints_the_artifact_and_exits_0(
    run_agent: AgentRunner, blocks: Runner
) -> None:
    run_agent(echo_handler, agent_name="echo")
    result = blocks("send", "echo", "hello")
    assert result.code == 0, result.err
    assert result.out == "Echoed request: hello\n"
    lines = result.err.splitlines()
    assert lines[0].startswith("[task] t_") and lines[0].endswith("sent to echo (free)")
    assert "[task] running" in lines
    assert "[task] artifact: text/plain, 21 B (inline)" in lines
    assert lines[-1].startswith("[task] completed (")
    assert "\r" not in result.err  # not a terminal: plain lines only


def test_json_output_is_one_document(run_agent: AgentRunner, blocks: Runner) -> None:
    run_agent(echo_handler, agent_name="echo")
    result = blocks("send", "echo", "hi", "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["state"] == "completed" and document["agentName"] == "echo"
    assert document["artifacts"] == [
        {"kind": "inline", "mimeType": "text/plain", "size": 18, "text": "Echoed request: hi"}
    ]
    assert [e["type"] for e in document["events"]] == [
        "request",
        "progress",
        "artifact",
        "terminal",
    ]


def test_no_wait_prints_the_task_id(run_agent: AgentRunner, blocks: Runner) -> None:
    run_agent(echo_handler, agent_name="echo")
    result = blocks("send", "echo", "hi", "--no-wait")
    assert result.code == 0
    task_id = result.out.strip()
    assert task_id.startswith("t_")
    watched = blocks("watch", task_id)
    assert watched.code == 0 and watched.out == "Echoed request: hi\n"


def test_failed_task_exits_1_with_the_error(run_agent: AgentRunner, blocks: Runner) -> None:
    def failing(task: StartTaskMessage, ctx: TaskContext) -> None:
        raise ValueError("the input makes no sense")

    run_agent(failing, agent_name="cli_failing")
    result = blocks("send", "cli_failing", "x")
    assert result.code == 1
    assert result.out == ""
    assert "[task] failed: ValueError: the input makes no sense (" in result.err


def test_timeout_exits_1_and_says_how_to_follow(run_agent: AgentRunner, blocks: Runner) -> None:
    release = threading.Event()

    def slow(task: StartTaskMessage, ctx: TaskContext) -> None:
        release.wait(10)

    run_agent(slow, agent_name="cli_slow")
    try:
        result = blocks("send", "cli_slow", "x", "--timeout", "0.3")
    finally:
        release.set()
    assert result.code == 1
    assert "still running after 0.3 s" in result.err
    assert "blocks watch t_" in result.err and "blocks tasks cancel t_" in result.err


def test_status_lines_and_a_stream_reach_the_terminal(
    run_agent: AgentRunner, blocks: Runner
) -> None:
    def streaming(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        ctx.report_status("warming up")
        stream = ctx.create_stream(format="events", subscribe_grace_ms=0)
        stream.write({"token": "a"})
        stream.write({"token": "b"})
        return {"artifacts": [{"data": "ab", "mimeType": "text/plain"}]}

    run_agent(streaming, agent_name="cli_streaming")
    result = blocks("send", "cli_streaming", "go", "--stream")
    assert result.code == 0, result.err
    assert result.out == "ab\n"  # stdout: the result; a request task's stream is live progress
    assert '{"token": "a"}\n{"token": "b"}\n' in result.err
    assert "[task] status: warming up" in result.err.splitlines()
    assert "[task] stream _default (events) opened" in result.err
    as_json = json.loads(blocks("send", "cli_streaming", "go", "--stream", "--json").out)
    assert as_json["streams"] == {"_default": [{"token": "a"}, {"token": "b"}]}


def test_files_are_uploaded_and_artifacts_saved(
    run_agent: AgentRunner, blocks: Runner, tmp_path: Path
) -> None:
    def reverse(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        part = next(p for p in task.request_parts if p.get("partId") == "doc")
        data = ctx.download_input_artifact(part).data
        return {
            "artifacts": [
                {"data": data[::-1], "mimeType": "application/octet-stream", "fileName": "out.bin"},
                {"data": str(len(data)), "mimeType": "text/plain", "fileName": "size.txt"},
            ]
        }

    run_agent(reverse, agent_name="cli_files")
    payload = os.urandom(50_000)  # above the 16 KiB inline limit: uploaded, and returned as a file
    (tmp_path / "in.bin").write_bytes(payload)
    result = blocks("send", "cli_files", "go", "--file", "doc=in.bin", "--save", "saved")
    assert result.code == 0, result.err
    assert (tmp_path / "saved" / "out.bin").read_bytes() == payload[::-1]
    assert (tmp_path / "saved" / "size.txt").read_text() == "50000"
    saved = tmp_path / "saved"
    assert result.out.split() == [str(saved / "out.bin"), str(saved / "size.txt")]
    err = result.err.splitlines()
    assert "[task] uploading in.bin (48.8 KB)..." in err
    assert "goes inline" not in result.err
    assert any(line.startswith("[task] uploaded 1 file(s): 48.8 KB in ") for line in err)
    assert any(line.startswith("[task] downloaded 1 file(s): 48.8 KB in ") for line in err)
    assert "artifact: out.bin application/octet-stream, 48.8 KB (file)" in result.err

    shown = blocks("send", "cli_files", "go", "--file", "doc=in.bin")
    assert shown.out == "50000\n"  # the binary one is described on stderr, not dumped
    assert "artifact out.bin is binary (application/octet-stream, 48.8 KB): pass --save DIR" in (
        shown.err
    )


def test_text_from_stdin(run_agent: AgentRunner, blocks_process: Runner) -> None:
    run_agent(echo_handler, agent_name="echo")
    result = blocks_process("send", "echo", "-", "--json", stdin="piped text")
    assert result.code == 0, result.err
    assert json.loads(result.out)["artifacts"][0]["text"] == "Echoed request: piped text"


def test_a_real_process_exits_0_and_prints_the_answer(
    run_agent: AgentRunner, blocks_process: Runner
) -> None:
    run_agent(echo_handler, agent_name="echo")
    result = blocks_process("send", "echo", "hello")
    assert (result.code, result.out) == (0, "Echoed request: hello\n"), result.err


def test_no_instance_online_exits_1_and_says_to_start_one(blocks: Runner) -> None:
    result = blocks("send", "adder", '{"a": 1, "b": 2}')  # registered, but no instance runs
    assert result.code == 1
    assert result.err.startswith("blocks send: Agent 'adder' cannot take tasks")
    assert "blocks-run" in result.err


def parts_handler(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
    """Answers the part ids it got and the upper-cased content of each (text or file)."""
    lines = []
    for part in task.request_parts:
        content = part["text"] if "text" in part else ctx.download_input_artifact(part).data
        shown = content if isinstance(content, str) else content.decode()
        lines.append(f"{part['partId']}: {shown.upper()}")
    return {"artifacts": [{"data": "\n".join(lines), "mimeType": "text/plain"}]}


def card_with_inputs(name: str, *inputs: tuple[str, str, bool], **changes: Any) -> dict[str, Any]:
    declared = [
        {"id": i, "description": "An input.", "contentType": t, "required": r} for i, t, r in inputs
    ]
    outputs = [{"id": "result", "contentType": "text/plain", "guaranteed": False}]
    return make_card(name, io={"inputs": declared, "outputs": outputs}, **changes)


def test_an_agent_whose_only_input_is_a_file(
    run_agent: AgentRunner, blocks: Runner, tmp_path: Path
) -> None:
    card = card_with_inputs("upper_file", ("file", "text/plain", True))
    run_agent(parts_handler, agent_name="upper_file", card=card)
    (tmp_path / "notes.txt").write_text("some notes")
    result = blocks("send", "upper_file", "", "--file", "notes.txt")  # the command
    assert result.code == 0, result.err
    assert result.out == "file: SOME NOTES\n"
    # 10 bytes travel inline in the request: nothing is uploaded, and the CLI says so.
    assert "[task] notes.txt (10 B) goes inline in the request" in result.err.splitlines()
    assert "upload" not in result.err
    without_text = blocks("send", "upper_file", "--file", "notes.txt")
    assert (without_text.code, without_text.out) == (0, "file: SOME NOTES\n"), without_text.err
    nothing = blocks("send", "upper_file")
    assert nothing.code == 2
    assert nothing.err == (
        "blocks send: agent 'upper_file' requires input(s) file: give TEXT for a text input, "
        "--file ID=PATH for a file (`blocks agents get upper_file` shows its card)\n"
    )


def test_part_ids_come_from_the_card_when_unambiguous(
    run_agent: AgentRunner, blocks: Runner, tmp_path: Path
) -> None:
    card = card_with_inputs(
        "cli_parts",
        ("prompt", "text/plain", True),
        ("doc", "application/octet-stream", False),
        ("extra", "application/octet-stream", False),
    )
    run_agent(parts_handler, agent_name="cli_parts", card=card)
    (tmp_path / "a.bin").write_text("aaa")
    (tmp_path / "b.bin").write_text("bbb")
    ambiguous = blocks("send", "cli_parts", "hi", "--file", "a.bin")
    assert ambiguous.code == 2
    assert ambiguous.err == (
        "blocks send: --file a.bin: agent 'cli_parts' has several inputs it could be "
        "(doc, extra); name one: --file ID=a.bin\n"
    )
    result = blocks("send", "cli_parts", "hi", "--file", "doc=a.bin", "--file", "b.bin")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["prompt: HI", "doc: AAA", "extra: BBB"]


def test_pipe_tasks_from_the_cli(run_agent: AgentRunner, blocks: Runner) -> None:
    card = card_with_inputs(
        "cli_pipe", ("text", "text/plain", False), capabilities={"taskKinds": ["pipe"]}
    )
    run_agent(parts_handler, agent_name="cli_pipe", card=card)
    no_duration = blocks("send", "cli_pipe")  # no TEXT: its only input is optional
    assert no_duration.code == 2
    assert no_duration.err == (
        "blocks send: cli_pipe runs pipe tasks, which last a fixed time: add --duration MIN "
        "(e.g. --kind pipe --duration 1)\n"
    )
    # A pipe handler that returns leaves its task open until the duration: end it ourselves.
    result = blocks("send", "cli_pipe", "--kind", "pipe", "--duration", "1", "--no-wait")
    assert result.code == 0, result.err
    task_id = result.out.strip()
    record = json.loads(blocks("tasks", "get", task_id, "--json").out)
    assert record["taskKind"] == "pipe"
    ended = blocks("tasks", "cancel", task_id, "--terminate", "--wait")
    assert ended.code == 0, ended.err
    request_duration = blocks("send", "echo", "hi", "--duration", "1")
    assert request_duration.code == 2 and "--kind pipe" in request_duration.err
