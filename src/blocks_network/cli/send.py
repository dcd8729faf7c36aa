"""``blocks send AGENT [TEXT] [--file [ID=]PATH]...``: submit a task, follow it live, print or save its artifacts.

Progress goes to stderr (``[task] ...`` lines; a bar for uploads and downloads on a
terminal), results to stdout: the text of textual artifacts, the paths saved with
``--save``, stream data as it arrives, or one JSON document with ``--json``. Exit code 0
when the task completed, 1 when it failed, was canceled or did not end in ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blocks_network.cli.card_io import (
    EXAMPLE_DURATION_MIN,
    card_of,
    file_part_id,
    only_kind,
    text_part_id,
)
from blocks_network.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_billing_mode,
    guarded,
    human_size,
    json_default,
    open_client,
)
from blocks_network.cli.follow import TaskFollower, stream_sink, terminal_line
from blocks_network.cli.progress import ProgressBar, Reporter
from blocks_network.consumer.parts import file_part, text_part
from blocks_network.consumer.task_session import TaskSession
from blocks_network.errors import ArtifactError
from blocks_network.protocol.agent_card import AgentCard
from blocks_network.protocol.constants import (
    DEFAULT_FILE_PART_ID,
    DEFAULT_TEXT_PART_ID,
    TASK_KIND_PIPE,
    TASK_KINDS,
)

__all__ = ["DEFAULT_TIMEOUT_S", "follow_to_end", "parse_file_option", "register", "run_send"]

PROG = "blocks send"
#: How long ``blocks send`` waits for the terminal by default (seconds).
DEFAULT_TIMEOUT_S = 120.0
_PART_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def parse_file_option(value: str) -> tuple[str | None, Path]:
    """``PATH`` → ``(None, PATH)`` (the part id comes from the card); ``ID=PATH`` →
    ``(ID, PATH)`` unless ``value`` itself is an existing file. Raises CliError (exit 2)
    when the file does not exist."""
    part_id: str | None
    part_id, sep, rest = value.partition("=")
    if sep and _PART_ID_RE.fullmatch(part_id) and not Path(value).exists():
        path = Path(rest)
    else:
        part_id, path = None, Path(value)
    if not path.is_file():
        raise CliError(f"--file {value}: no such file ({path.resolve()})", EXIT_USAGE)
    return part_id, path


def _text(args: argparse.Namespace) -> str | None:
    """TEXT (stdin for ``-``); None when omitted, or empty beside ``--file``: no text part."""
    text: str | None = sys.stdin.read() if args.text == "-" else args.text
    return None if text is None or (text == "" and args.file) else text


def _parts(
    text: str | None,
    files: list[tuple[str, str | None, Path]],
    args: argparse.Namespace,
    card: AgentCard | None,
) -> tuple[list[dict[str, Any]], list[tuple[Path, int]]]:
    """The request parts: TEXT, then each ``(value, given id, path)`` of ``--file``."""
    parts: list[dict[str, Any]] = []
    if text is not None:
        parts.append(text_part(text, part_id=args.text_part_id or text_part_id(card)))
    taken = {p["partId"] for p in parts} | {part_id for _, part_id, _ in files if part_id}
    sizes: list[tuple[Path, int]] = []
    for value, given, path in files:
        part_id = given or file_part_id(card, taken, value)
        taken.add(part_id)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            parts.append(file_part(path, part_id=part_id, content_type=content_type))
        except ArtifactError as exc:
            raise CliError(f"--file {value}: {exc}", EXIT_USAGE) from exc
        sizes.append((path, path.stat().st_size))
    missing = [i.id for i in card.inputs if i.required and i.id not in taken] if card else []
    if missing:
        raise CliError(
            f"agent {args.agent!r} requires input(s) {', '.join(missing)}: give TEXT for a "
            "text input, --file ID=PATH for a file (`blocks agents get "
            f"{args.agent}` shows its card)",
            EXIT_USAGE,
        )
    return parts, sizes


def _kind(args: argparse.Namespace, card: AgentCard | None) -> tuple[str | None, int | None]:
    """``(task_kind, duration)``: ``--kind``, else the card's only kind; pipe needs minutes."""
    kind = args.kind or only_kind(card)
    if kind == TASK_KIND_PIPE and args.duration is None:
        raise CliError(
            f"{args.agent} runs pipe tasks, which last a fixed time: add --duration MIN "
            f"(e.g. --kind pipe --duration {EXAMPLE_DURATION_MIN})",
            EXIT_USAGE,
        )
    if kind != TASK_KIND_PIPE and args.duration is not None:
        raise CliError("--duration is for pipe tasks: add --kind pipe", EXIT_USAGE)
    if args.duration is not None and args.duration < 1:
        raise CliError("--duration must be at least 1 (minutes)", EXIT_USAGE)
    return kind, args.duration


def _announce_files(
    files: list[tuple[Path, int]], uploads: list[tuple[Path, int]], reporter: Reporter
) -> ProgressBar | None:
    """Say how each file travels: ``send_message`` sends a file inline in the request up to
    the config's inline limit and uploads larger ones (consumer/parts.py); a bar for those."""
    for path, size in files:
        if (path, size) not in uploads:
            reporter.line(f"{path.name} ({human_size(size)}) goes inline in the request")
    if not uploads:
        return None
    names = ", ".join(path.name for path, _ in uploads)
    return reporter.bar(f"uploading {names}", sum(size for _, size in uploads))


def run_send(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Run ``blocks send``; returns the exit code."""
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be a positive number of seconds", EXIT_USAGE)
    reporter = Reporter()
    text = _text(args)
    named = [(value, *parse_file_option(value)) for value in args.file or []]
    with open_client(args.billing_mode, env) as client:
        card = card_of(client.get_agent_card(args.agent))  # part ids and kind come from it
        parts, files = _parts(text, named, args, card)
        task_kind, duration = _kind(args, card)
        uploads = [f for f in files if f[1] > client.config.inline_limit_bytes]
        bar = _announce_files(files, uploads, reporter)
        session = client.send_message(
            args.agent,
            parts,
            idempotency_key=args.idempotency_key,
            stream=args.stream,
            task_kind=task_kind,
            duration=duration,
        )
        if bar is not None:
            bar.finish(f"uploaded {len(uploads)} file(s)")
        with session:
            reporter.line(f"{session.task_id} sent to {args.agent} ({args.billing_mode})")
            if session.state == "queued":
                reporter.line(
                    f"queued: every instance of {args.agent} is busy; it starts when one is free"
                )
            if args.no_wait:
                print(session.task_id, flush=True)
                return EXIT_OK
            return follow_to_end(
                session, args, reporter, started=time.monotonic(), task_kind=task_kind
            )


def follow_to_end(
    session: TaskSession,
    args: argparse.Namespace,
    reporter: Reporter,
    *,
    started: float,
    task_kind: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Follow ``session`` until its terminal and print the results (send and watch)."""
    json_out = getattr(args, "json", False)
    follower = TaskFollower(
        session, reporter=reporter, stream_out=stream_sink(task_kind), collect_streams=json_out
    )
    try:
        try:
            terminal = session.wait_for_terminal(timeout=args.timeout)
        except TimeoutError:
            reporter.line(
                f"still {session.state or 'running'} after {args.timeout:g} s; follow it with "
                f"`blocks watch {session.task_id}` or stop it with "
                f"`blocks tasks cancel {session.task_id}`"
            )
            return EXIT_FAILURE
        except KeyboardInterrupt:
            reporter.line(
                f"interrupted; task {session.task_id} goes on: `blocks watch "
                f"{session.task_id}` follows it, `blocks tasks cancel {session.task_id}` stops it"
            )
            return EXIT_INTERRUPTED
        follower.finish_streams()
        elapsed = time.monotonic() - started
        reporter.line(f"{terminal_line(terminal)} ({elapsed:.2f} s)")
        artifacts = follower.results(args.save, show=not json_out)
        if json_out:
            document: dict[str, Any] = {
                "taskId": session.task_id,
                "agentName": session.agent_name,
                "state": terminal.state,
                **{
                    k: v
                    for k, v in (
                        ("error", terminal.error),
                        ("reason", terminal.reason),
                        ("completionReason", terminal.completion_reason),
                    )
                    if v
                },
                "artifacts": artifacts,
                "streams": follower.streams,
                "events": [dict(e.data) for e in session.events],
                **(extra or {}),
            }
            print(json.dumps(document, indent=2, default=json_default), flush=True)
        if args.save:
            reporter.line(f"saved {len(artifacts)} artifact(s) in {args.save}")
        return EXIT_OK if terminal.state == "completed" else EXIT_FAILURE
    finally:
        follower.close()


def register(commands: Any) -> None:
    """Add ``send`` to the ``blocks`` subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "send",
        help="send a task to an agent and print its results",
        description=(
            "Send TEXT (and files) to AGENT, follow the task live and print its results. "
            "Progress goes to stderr, results to stdout. Exit code 0 when the task "
            "completed, 1 when it failed, was canceled or timed out, 2 for bad arguments, "
            "3 when the network is unreachable."
        ),
        epilog=(
            'examples:\n  blocks send echo "hello"\n'
            '  blocks send adder \'{"a": 1, "b": 2}\' --json\n'
            "  blocks send file_tools notes --file notes.txt --save out/\n"
            "  blocks send upper_file --file notes.txt\n"
            "  blocks send stock_sim --kind pipe --duration 1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("agent", metavar="AGENT", help="agent name, e.g. echo")
    parser.add_argument(
        "text",
        metavar="TEXT",
        nargs="?",
        help="the text part ('-' reads stdin); optional ('' beside --file sends no text part)",
    )
    parser.add_argument(
        "--file",
        action="append",
        metavar="[ID=]PATH",
        help=(
            f"attach a file; without ID= its part id is {DEFAULT_FILE_PART_ID!r} if the "
            "agent's card declares it, else the card's one remaining input; repeatable"
        ),
    )
    parser.add_argument(
        "--text-part-id",
        metavar="ID",
        help=(
            f"part id of TEXT (default {DEFAULT_TEXT_PART_ID!r} if the agent's card declares "
            "it, else the card's only text input)"
        ),
    )
    parser.add_argument(
        "--kind",
        choices=TASK_KINDS,
        help="task kind (default: the card's only kind, else request)",
    )
    parser.add_argument(
        "--duration", type=int, metavar="MIN", help="pipe tasks: how long it runs, in minutes"
    )
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for live streams, or not (default: the agent's card decides)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON result on stdout")
    parser.add_argument("--save", metavar="DIR", help="save every artifact into DIR")
    parser.add_argument(
        "--no-wait", action="store_true", help="print the task id and return at once"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"give up waiting after S seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--idempotency-key", metavar="KEY", help="resending KEY returns the same task"
    )
    add_billing_mode(parser)
    parser.set_defaults(handler=guarded(PROG, run_send))
