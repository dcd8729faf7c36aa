"""``blocks watch TASK_ID``: reattach to a task, show its history, then follow it live.

A finished task prints its events and artifacts and exits at once; a running one is
followed (events, and every readable stream as it is announced) until its terminal.
``--json`` prints one JSON object per line: events, stream data, then a summary. Exit code
0 when the task completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from blocks_network.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_billing_mode,
    guarded,
    json_default,
    open_client,
)
from blocks_network.cli.follow import TaskFollower, stream_sink, terminal_line
from blocks_network.cli.progress import Reporter

__all__ = ["register", "run_watch"]

PROG = "blocks watch"


def run_watch(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Run ``blocks watch``; returns the exit code."""
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be a positive number of seconds", EXIT_USAGE)
    reporter = Reporter()
    started = time.monotonic()
    with open_client(args.billing_mode, env) as client:
        task_kind = client.get_task(args.task_id).extra.get("taskKind")
        session = client.connect(args.task_id)
        with session:
            if not args.json:
                reporter.line(
                    f"{session.task_id} ({session.agent_name or 'unknown agent'}): "
                    f"{session.state or 'unknown state'}"
                )
            follower = TaskFollower(
                session, reporter=reporter, stream_out=stream_sink(task_kind), json_lines=args.json
            )
            try:
                try:
                    terminal = session.wait_for_terminal(timeout=args.timeout)
                except TimeoutError:
                    reporter.line(
                        f"still {session.state or 'running'} after {args.timeout:g} s; "
                        f"run `blocks watch {session.task_id}` again to keep following it"
                    )
                    return EXIT_FAILURE
                except KeyboardInterrupt:
                    reporter.line(f"stopped watching; task {session.task_id} goes on")
                    return EXIT_INTERRUPTED
                follower.finish_streams()
                if not args.json:
                    reporter.line(f"{terminal_line(terminal)} ({time.monotonic() - started:.2f} s)")
                artifacts = follower.results(args.save, show=not args.json)
                if args.json:
                    summary: dict[str, Any] = {
                        "type": "summary",
                        "taskId": session.task_id,
                        "agentName": session.agent_name,
                        "state": terminal.state,
                        "artifacts": artifacts,
                    }
                    if terminal.error:
                        summary["error"] = terminal.error
                    print(json.dumps(summary, default=json_default), flush=True)
                return EXIT_OK if terminal.state == "completed" else EXIT_FAILURE
            finally:
                follower.close()


def register(commands: Any) -> None:
    """Add ``watch`` to the ``blocks`` subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "watch",
        help="follow a task's events and streams until it ends",
        description=(
            "Reattach to TASK_ID: print its history, then follow its events and streams "
            "live until it ends, then print its artifacts. Exit code 0 when the task "
            "completed, 1 when it failed or was canceled."
        ),
    )
    parser.add_argument("task_id", metavar="TASK_ID", help="the task id (t_...)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per line on stdout"
    )
    parser.add_argument("--save", metavar="DIR", help="save every artifact into DIR")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up after S seconds (default: follow until the task ends)",
    )
    add_billing_mode(parser)
    parser.set_defaults(handler=guarded(PROG, run_watch))
