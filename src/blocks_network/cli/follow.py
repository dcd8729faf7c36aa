"""Following one task for ``blocks send`` and ``blocks watch``: event lines, streams, results.

:class:`TaskFollower` registers on a ``TaskSession``: each event becomes a ``[task] ...``
line on stderr (or a JSON line on stdout with ``json_lines``), each readable stream is
opened as it is announced and copied as it arrives by a reader thread, and once the task is
over :meth:`TaskFollower.results` downloads the artifacts (with a progress bar for remote
files) and prints or saves them.

Stdout carries a task's result: the artifacts of a request task, the streams of a pipe task
(whose streams are its product). A request task's streams are live progress, so they go to
stderr and ``$(blocks send ...)`` is the artifact alone (:func:`stream_sink`). A stream's
output always ends with a newline, so what follows starts on a line of its own.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from blocks_network.cli.common import human_size, json_default
from blocks_network.cli.progress import Reporter
from blocks_network.consumer.artifacts import safe_artifact_path
from blocks_network.consumer.events import TaskEvent
from blocks_network.consumer.task_session import TaskSession
from blocks_network.errors import BlocksError
from blocks_network.protocol.artifacts import ArtifactRef
from blocks_network.protocol.constants import TASK_KIND_PIPE
from blocks_network.stream import StreamClient, StreamRef

__all__ = ["TaskFollower", "describe_event", "is_textual", "stream_sink", "terminal_line"]

#: How long, after the terminal, stream readers may take to deliver what is left.
STREAM_FINISH_S = 10.0
_TEXT_TYPES = ("application/json", "application/xml", "application/yaml", "application/x-ndjson")


def is_textual(mime_type: str | None) -> bool:
    """True for ``text/*`` and the JSON/XML/YAML types that read as text."""
    mime = (mime_type or "").split(";")[0].strip().lower()
    return mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith("+json")


def describe_event(event: TaskEvent) -> str | None:
    """The status line for one event, or None for events shown another way."""
    kind = event.type
    if kind == "progress":
        if event.is_stream_started:
            return None
        if event.message:
            return f"status: {event.message}"
        return event.state or "progress"
    if kind == "artifact":
        ref = event.artifact_ref
        if ref is None:
            return "artifact (unreadable reference)"
        name = f" {ref.file_name}" if ref.file_name else ""
        where = "file" if ref.KIND == "file" else "inline"
        return f"artifact:{name} {ref.mime_type}, {human_size(ref.size)} ({where})"
    if kind == "system":
        return event.status or "system event"
    if kind == "cancel_requested":
        return "cancel requested"
    if kind == "log":
        return f"log: {event.message}"
    if kind in ("request", "terminal"):
        return None
    return kind


def stream_sink(task_kind: object) -> TextIO:
    """Where a task's live streams go: stdout for a pipe task, stderr for a request task."""
    return sys.stdout if task_kind == TASK_KIND_PIPE else sys.stderr


def terminal_line(event: TaskEvent) -> str:
    """``completed``, ``failed: <error>``, ``canceled (terminated)``..."""
    state = event.state or "ended"
    details = [d for d in (event.completion_reason, event.reason) if d]
    text = f"{state} ({', '.join(details)})" if details else state
    if event.error:
        text += f": {event.error}"
    return text


class TaskFollower:
    """Shows one session's events, streams and results. Thread-safe; :meth:`close` joins
    the reader threads it started."""

    def __init__(
        self,
        session: TaskSession,
        *,
        reporter: Reporter,
        out: TextIO | None = None,
        stream_out: TextIO | None = None,
        json_lines: bool = False,
        collect_streams: bool = False,
    ) -> None:
        self.session = session
        self.reporter = reporter
        self.out = out or sys.stdout
        #: Where stream data goes (``out`` unless told): see :func:`stream_sink`.
        self.stream_out = stream_out or self.out
        self.json_lines = json_lines
        self.collect_streams = collect_streams
        self.streams: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._clients: list[StreamClient] = []
        self._unsubscribe = [
            session.on_event(self._on_event),
            session.on_stream(self._on_stream),
        ]

    # --- events ---------------------------------------------------------------------------

    def _on_event(self, event: TaskEvent) -> None:
        if self.json_lines:
            self._emit_json({"type": "event", "event": dict(event.data)})
            return
        line = describe_event(event)
        if line is not None:
            with self._lock:
                self.reporter.line(line)

    def _emit_json(self, obj: Mapping[str, Any]) -> None:
        with self._lock:
            self.out.write(json.dumps(obj, default=json_default) + "\n")
            self.out.flush()

    # --- streams --------------------------------------------------------------------------

    def _on_stream(self, ref: StreamRef) -> None:
        d = ref.descriptor
        name = d.declared_stream or ref.stream_id
        if not d.readable:
            with self._lock:
                self.reporter.line(f"stream {name}: written by the consumer, not shown")
            return
        try:
            client = ref.open()
        except BlocksError as exc:
            with self._lock:
                self.reporter.line(f"stream {name}: cannot be opened ({exc})")
            return
        with self._lock:
            if not self.json_lines:
                self.reporter.line(f"stream {name} ({d.format}) opened")
            self._clients.append(client)
            reader = threading.Thread(
                target=self._read, args=(client, name), name="blocks-cli-stream", daemon=True
            )
            self._readers.append(reader)
        reader.start()

    def _read(self, client: StreamClient, name: str) -> None:
        open_line = False  # the last bytes shown did not end their line
        try:
            if client.format == "events":
                for item in client.events():
                    self._stream_item(name, item)
            else:
                for chunk in client.bytes():
                    self._stream_item(name, chunk)
                    open_line = not chunk.endswith(b"\n") if chunk else open_line
        except BlocksError as exc:
            with self._lock:
                self.reporter.line(f"stream {name}: {exc}")
        if self.json_lines or self.collect_streams:
            return
        with self._lock:
            if self.stream_out is self.reporter.stream:
                self.reporter.end_line()
            elif open_line:
                self.stream_out.write("\n")
                self.stream_out.flush()
            self.reporter.line(f"stream {name} ended")

    def _stream_item(self, name: str, item: Any) -> None:
        if self.collect_streams:
            with self._lock:
                self.streams.setdefault(name, []).append(item)
            return
        if self.json_lines:
            self._emit_json({"type": "stream", "stream": name, "data": item})
            return
        with self._lock:
            if isinstance(item, bytes) and self.stream_out is self.reporter.stream:
                # Status lines on the same stream must not land mid-line (stderr, request tasks).
                self.reporter.partial(item.decode("utf-8", errors="replace"))
                return
            if isinstance(item, bytes):
                self.stream_out.write(item.decode("utf-8", errors="replace"))
            else:
                self.stream_out.write(json.dumps(item, default=json_default) + "\n")
            self.stream_out.flush()

    # --- results --------------------------------------------------------------------------

    def finish_streams(self, timeout: float = STREAM_FINISH_S) -> None:
        """Let open streams deliver what is left (up to ``timeout``), then close them."""
        with self._lock:
            readers = list(self._readers)
        for reader in readers:
            reader.join(timeout)
        self.close()

    def results(self, save_dir: str | None, *, show: bool) -> list[dict[str, Any]]:
        """Download every artifact: save it under ``save_dir`` or, with ``show``, print the
        textual ones to stdout. Returns one summary dict per artifact (for ``--json``)."""
        refs = self.session.list_artifacts()
        remote = sum(ref.size for ref in refs if ref.KIND == "file")
        bar = self.reporter.bar("downloading", remote) if remote else None
        summaries: list[dict[str, Any]] = []
        for index, ref in enumerate(refs):
            artifact = self.session.download_artifact(ref)
            if bar is not None and ref.KIND == "file":
                bar.advance(ref.size)
            summary = _summary(ref, artifact.file_name)
            if save_dir is not None:
                path = safe_artifact_path(Path(save_dir), artifact.file_name, index)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(artifact.data)
                summary["path"] = str(path)
            elif is_textual(artifact.mime_type):
                summary["text"] = artifact.data.decode("utf-8", errors="replace")
            summaries.append(summary)
        if bar is not None:
            bar.finish(f"downloaded {sum(1 for r in refs if r.KIND == 'file')} file(s)")
        if show:
            self._show(summaries)
        return summaries

    def _show(self, summaries: list[dict[str, Any]]) -> None:
        for summary in summaries:
            if "path" in summary:
                self.out.write(f"{summary['path']}\n")
            elif "text" in summary:
                text = summary["text"]
                self.out.write(text if text.endswith("\n") else text + "\n")
            else:
                self.reporter.line(
                    f"artifact {summary.get('fileName') or ''} is binary "
                    f"({summary['mimeType']}, {human_size(summary['size'])}): "
                    "pass --save DIR to keep it".replace("  ", " ")
                )
        self.out.flush()

    def close(self) -> None:
        """Stop listening, close opened streams, join reader threads; safe to call twice."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        with self._lock:
            clients, self._clients = self._clients, []
            readers, self._readers = self._readers, []
        for client in clients:
            client.close()
        for reader in readers:
            reader.join(STREAM_FINISH_S)


def _summary(ref: ArtifactRef, file_name: str | None) -> dict[str, Any]:
    summary: dict[str, Any] = {"kind": ref.KIND, "mimeType": ref.mime_type, "size": ref.size}
    if file_name:
        summary["fileName"] = file_name
    return summary
