"""``blocks agents list|get``: what the registry knows (public agents and your own)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from blocks_network.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_json,
    guarded,
    registry_client,
)
from blocks_network.cli.tables import print_table

__all__ = ["register"]


def _pricing(record: dict[str, Any]) -> str:
    pricing = record.get("pricing") or {}
    parts = [f"{v}/task" for k, v in pricing.items() if k == "pricePerTask"]
    parts += [f"{v}/min" for k, v in pricing.items() if k == "pricePerMinute"]
    return ", ".join(parts) or "-"


def _online(record: dict[str, Any]) -> str:
    """``2 (3 free)``, ``1 (unlimited)``, ``0``; ``?`` when the registry does not say (only
    the local network adds ``onlineInstances``/``freeSlots``)."""
    online = record.get("onlineInstances")
    if not isinstance(online, int):
        return "?"
    if online == 0:
        return "0"
    free = record.get("freeSlots")
    return f"{online} ({'unlimited' if free is None else f'{free} free'})"


def run_list(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Print one page of agents."""
    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    with registry_client(env, need_key=False) as registry:
        page = registry.list(
            tag=args.tag, listing=args.listing, limit=args.limit, cursor=args.cursor
        )
    if args.json:
        document = {"agents": page.agents, "next": page.next, "totalCount": page.total_count}
        print(json.dumps(document, indent=2), flush=True)
        return EXIT_OK
    rows = [
        [
            str(a.get("agentName", "")),
            str(a.get("billingMode", "")),
            _pricing(a),
            str(a.get("listing", "")),
            _online(a),
            str(a.get("description") or ""),
        ]
        for a in page.agents
    ]
    header = ["AGENT", "BILLING", "PRICE", "LISTING", "ONLINE", "DESCRIPTION"]
    print_table(header, rows, empty="no agents")
    if page.next:
        print(f"# more: blocks agents list --cursor {page.next}", flush=True)
    return EXIT_OK


def run_get(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Print one agent's record and card."""
    with registry_client(env, need_key=False) as registry:
        record = registry.get(args.agent)
    if record is None:
        raise CliError(
            f"no agent {args.agent!r}: it is not published, or it is private to another "
            "organisation (`blocks agents list` shows what you can see)",
            EXIT_FAILURE,
        )
    if args.json:
        print(json.dumps(record, indent=2), flush=True)
        return EXIT_OK
    rows = [
        ["agent", str(record.get("agentName", ""))],
        ["description", str(record.get("description") or "")],
        ["billing", str(record.get("billingMode", ""))],
        ["price", _pricing(record)],
        ["listing", str(record.get("listing", ""))],
        ["online", _online(record)],
        ["registered", str(record.get("registeredAt", ""))],
    ]
    print_table(None, rows)
    card = record.get("card")
    if card:
        print(json.dumps(card, indent=2), flush=True)
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``agents`` (list, get) to the ``blocks`` subcommands."""
    agents: argparse.ArgumentParser = commands.add_parser(
        "agents",
        help="list and inspect registered agents",
        description="Read the agent registry (public agents and your organisation's own).",
    )
    actions = agents.add_subparsers(
        dest="agents_command", required=True, metavar="ACTION", prog="blocks agents"
    )
    listing = actions.add_parser("list", help="registered agents", description="List agents.")
    listing.add_argument("--tag", help="only agents with this tag (id or name)")
    listing.add_argument("--listing", choices=("public", "private"), help="only this listing")
    listing.add_argument("--limit", type=int, metavar="N", help="page size")
    listing.add_argument("--cursor", metavar="C", help="the page after a previous listing")
    add_json(listing, "the page")
    listing.set_defaults(handler=guarded("blocks agents list", run_list))

    get = actions.add_parser(
        "get", help="one agent's record and card", description="Print an agent and its card."
    )
    get.add_argument("agent", metavar="NAME")
    add_json(get, "the record")
    get.set_defaults(handler=guarded("blocks agents get", run_get))
