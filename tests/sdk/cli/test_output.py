"""The pieces of ``blocks`` output: the progress bar (terminal and piped), event lines,
file options; and a real terminal (a pty) showing the bar."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blocks_network.cli.common import CliError, human_size
from blocks_network.cli.follow import describe_event, is_textual, stream_sink, terminal_line
from blocks_network.cli.progress import ProgressBar, Reporter
from blocks_network.cli.send import parse_file_option
from blocks_network.consumer.events import TaskEvent
from blocks_network.testing import AgentRunner
from blocks_network.types import StartTaskMessage, TaskContext

from .conftest import PROCESS_TIMEOUT_S


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_redraws_one_line() -> None:
    out = FakeTerminal()
    bar = ProgressBar("downloading", 2048, stream=out)
    bar.advance(1024)
    assert bar.render().endswith("[############------------]  50%  1.0 KB/2.0 KB")
    bar.finish("downloaded 1 file(s)")
    text = out.getvalue()
    assert text.count("\r") == 3  # drawn at 0 %, 50 % and 100 %
    assert "100%" in text
    assert text.endswith(" 100%  2.0 KB/2.0 KB\n[task] downloaded 1 file(s): 2.0 KB in 0.00 s\n")


def test_progress_bar_when_piped_prints_two_plain_lines() -> None:
    out = io.StringIO()
    bar = ProgressBar("uploading a.bin", 3 * 1024 * 1024, stream=out)
    bar.advance(1024)
    bar.finish("uploaded 1 file(s)")
    bar.finish("twice is harmless")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[task] uploading a.bin (3.0 MB)..."
    assert lines[1].startswith("[task] uploaded 1 file(s): 3.0 MB in ")
    assert len(lines) == 2 and "\r" not in out.getvalue()


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (5 * 2**20, "5.0 MB")]
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def event(**data: Any) -> TaskEvent:
    return TaskEvent({"taskId": "t_1", **data})


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"type": "progress", "state": "running", "progress": 0}, "running"),
        ({"type": "progress", "message": "thinking"}, "status: thinking"),
        ({"type": "progress", "streamEvent": "stream_started", "streams": {}}, None),
        (
            {
                "type": "artifact",
                "artifactRef": {
                    "kind": "inline",
                    "mimeType": "text/plain",
                    "size": 2,
                    "data": "aGk=",
                },
            },
            "artifact: text/plain, 2 B (inline)",
        ),
        ({"type": "system", "status": "paused"}, "paused"),
        ({"type": "cancel_requested"}, "cancel requested"),
        ({"type": "request", "requestParts": []}, None),
        ({"type": "terminal", "state": "completed"}, None),
        ({"type": "custom_thing"}, "custom_thing"),
    ],
)
def test_describe_event(data: dict[str, Any], line: str | None) -> None:
    assert describe_event(event(**data)) == line


def test_terminal_line() -> None:
    assert terminal_line(event(type="terminal", state="completed")) == "completed"
    assert terminal_line(event(type="terminal", state="failed", error="boom")) == "failed: boom"
    canceled = event(type="terminal", state="canceled", reason="terminated")
    assert terminal_line(canceled) == "canceled (terminated)"
    expired = event(type="terminal", state="completed", completionReason="duration_expired")
    assert terminal_line(expired) == "completed (duration_expired)"


def test_is_textual() -> None:
    assert all(map(is_textual, ["text/plain", "application/json", "text/csv; charset=utf-8"]))
    assert not any(map(is_textual, ["application/octet-stream", "image/png", None]))


def test_file_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.txt").write_text("x")
    Path("odd=name.txt").write_text("x")
    assert parse_file_option("a.txt") == (None, Path("a.txt"))
    assert parse_file_option("doc=a.txt") == ("doc", Path("a.txt"))
    assert parse_file_option("odd=name.txt") == (None, Path("odd=name.txt"))
    with pytest.raises(CliError) as info:
        parse_file_option("doc=missing.txt")
    assert info.value.exit_code == 2


def test_a_real_terminal_shows_the_progress_bar(
    run_agent: AgentRunner, cli_env: dict[str, str], tmp_path: Path
) -> None:
    def size_of(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        part = next(p for p in task.request_parts if p.get("partId") == "file")
        data = ctx.download_input_artifact(part).data
        return {"artifacts": [{"data": data, "mimeType": "application/octet-stream"}]}

    run_agent(size_of, agent_name="cli_tty")
    (tmp_path / "big.bin").write_bytes(os.urandom(40_000))
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "blocks_network.cli.blocks",
                "send",
                "cli_tty",
                "x",
                "--file",
                "big.bin",
                "--save",
                "out",
            ],
            stdout=subprocess.PIPE,
            stderr=follower,
            cwd=tmp_path,
            env=cli_env,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:  # read the terminal until the process closes it
            ready, _, _ = select.select([leader], [], [], PROCESS_TIMEOUT_S)
            assert ready, "the command wrote nothing to its terminal in time"
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: every writer closed the pty
                break
            if not chunk:
                break
            chunks.append(chunk)
        out, _ = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    terminal = b"".join(chunks).decode()
    assert process.returncode == 0, terminal
    assert "\r[task] uploading big.bin  [" in terminal and "] 100%  39.1 KB/39.1 KB" in terminal
    assert "\r[task] downloading  [" in terminal
    (saved,) = (tmp_path / "out").iterdir()  # an uploaded artifact is named {taskId}-artifact
    assert saved.name.endswith("-artifact") and saved.stat().st_size == 40_000
    assert out.decode().strip() == str(saved)


def test_streams_of_pipe_tasks_are_the_result_those_of_request_tasks_progress() -> None:
    assert stream_sink("pipe") is sys.stdout
    assert stream_sink("request") is sys.stderr
    assert stream_sink(None) is sys.stderr  # request is the default kind


def test_a_status_line_after_unended_stream_text_starts_a_line_of_its_own() -> None:
    out = io.StringIO()
    reporter = Reporter(out)
    reporter.partial("to be or")
    reporter.line("artifact: text/plain, 18 B (inline)")
    reporter.partial(" not to be")
    reporter.end_line()
    reporter.end_line()  # nothing more: the line is already ended
    reporter.line("stream _default ended")
    assert out.getvalue() == (
        "to be or\n[task] artifact: text/plain, 18 B (inline)\n not to be\n"
        "[task] stream _default ended\n"
    )
