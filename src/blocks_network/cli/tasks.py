"""``blocks tasks list|get|cancel``: your tasks' records, and stopping one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from blocks_network.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_billing_mode,
    add_json,
    guarded,
    open_client,
)
from blocks_network.cli.tables import print_table
from blocks_network.protocol.constants import TERMINAL_STATES

__all__ = ["register"]

_STATES = ("queued", "submitted", "running", "completed", "failed", "canceled")


def run_list(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Print one page of tasks, newest first."""
    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    with open_client(args.billing_mode, env) as client:
        page = client.list_tasks(
            agent_name=args.agent, state=args.state, limit=args.limit, cursor=args.cursor
        )
    if args.json:
        document = {
            "tasks": [task.to_wire() for task in page.tasks],
            "next": page.next,
            "totalCount": page.total_count,
        }
        print(json.dumps(document, indent=2), flush=True)
        return EXIT_OK
    rows = [[t.task_id, t.agent_name or "", t.state, str(t.created_time or "")] for t in page.tasks]
    print_table(["TASK", "AGENT", "STATE", "CREATED"], rows, empty="no tasks")
    if page.next:
        print(f"# more: blocks tasks list --cursor {page.next}", flush=True)
    return EXIT_OK


def run_get(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Print one task's record."""
    with open_client(args.billing_mode, env) as client:
        task = client.get_task(args.task_id)
    wire = task.to_wire()
    if args.json:
        print(json.dumps(wire, indent=2), flush=True)
        return EXIT_OK
    order = ["taskId", "agentName", "state", "taskKind", "createdTime", "startedTime"]
    order += ["endedTime", "error", "reason", "completionReason", "owner", "orgId"]
    rows = [[key, _text(wire[key])] for key in order if key in wire]
    rows += [[k, _text(v)] for k, v in wire.items() if k not in order]
    print_table(None, rows)
    return EXIT_OK


def run_cancel(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Ask for a cancel (or a terminate); with ``--wait``, wait for the terminal.

    A task that already ended is reported with its state and exit 1: nothing was stopped.
    """
    with open_client(args.billing_mode, env) as client:
        record = client.get_task(args.task_id)
        if record.state in TERMINAL_STATES:
            raise CliError(f"task {args.task_id} already ended ({record.state}); nothing to stop")
        if args.terminate:
            client.terminate_task(args.task_id)
            print(f"terminate requested for {args.task_id}", flush=True)
        else:
            client.cancel_task(args.task_id)
            print(f"cancel requested for {args.task_id}", flush=True)
        if args.wait:
            with client.connect(args.task_id) as session:
                terminal = session.wait_for_terminal(timeout=args.timeout)
                print(f"{args.task_id}: {terminal.state}", flush=True)
    return EXIT_OK


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def register(commands: Any) -> None:
    """Add ``tasks`` (list, get, cancel) to the ``blocks`` subcommands."""
    tasks: argparse.ArgumentParser = commands.add_parser(
        "tasks",
        help="list, inspect and cancel your tasks",
        description="Read task records from the task service, or cancel a task.",
    )
    actions = tasks.add_subparsers(
        dest="tasks_command", required=True, metavar="ACTION", prog="blocks tasks"
    )

    listing = actions.add_parser(
        "list", help="your tasks, newest first", description="One page of your tasks."
    )
    listing.add_argument("--agent", metavar="NAME", help="only tasks of this agent")
    listing.add_argument("--state", choices=_STATES, help="only tasks in this state")
    listing.add_argument("--limit", type=int, metavar="N", help="page size")
    listing.add_argument("--cursor", metavar="C", help="the page after a previous listing")
    add_json(listing, "the page")
    add_billing_mode(listing)
    listing.set_defaults(handler=guarded("blocks tasks list", run_list))

    get = actions.add_parser("get", help="one task's record", description="Print a task.")
    get.add_argument("task_id", metavar="TASK_ID")
    add_json(get, "the record")
    add_billing_mode(get)
    get.set_defaults(handler=guarded("blocks tasks get", run_get))

    cancel = actions.add_parser(
        "cancel",
        help="cancel (or terminate) a task",
        description=(
            "Ask the agent to stop TASK_ID cooperatively (CancelTask); --terminate ends it "
            "at once (TerminateTask: canceled, reason terminated)."
        ),
    )
    cancel.add_argument("task_id", metavar="TASK_ID")
    cancel.add_argument("--terminate", action="store_true", help="terminate instead of cancel")
    cancel.add_argument("--wait", action="store_true", help="wait for the task's terminal")
    cancel.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="with --wait (default 30)"
    )
    add_billing_mode(cancel)
    cancel.set_defaults(handler=guarded("blocks tasks cancel", run_cancel))
