"""``blocks publish [agent-card.json]``: register or update an agent in the registry.

The card is validated locally first (a broken rule is one line naming the field, exit 2),
then sent with the billing mode, pricing and listing, using ``BLOCKS_API_KEY``. The billing
mode is explicit: the registry checks prices against it and never derives it from them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from blocks_network.cli.card_io import example_send
from blocks_network.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    guarded,
    registry_client,
)
from blocks_network.protocol.agent_card import AgentCard, validate_agent_card
from blocks_network.protocol.errors import AgentCardError

__all__ = ["load_card", "register"]

CARD_FILE = "agent-card.json"


def load_card(path: Path) -> AgentCard:
    """Read and validate an agent card; raises CliError (exit 2) naming the problem."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(
            f"{path}: no such file; pass the card's path or run in the agent's folder",
            EXIT_USAGE,
        ) from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read it: {exc.strerror or exc}", EXIT_USAGE) from None
    except ValueError as exc:
        raise CliError(f"{path}: not valid JSON: {exc}", EXIT_USAGE) from None
    try:
        return validate_agent_card(card)
    except AgentCardError as exc:
        raise CliError(f"{path.name}: {exc.path}: {exc.reason}", EXIT_USAGE) from None


def run_publish(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Run ``blocks publish``; returns the exit code."""
    path = Path(args.card)
    card = load_card(path)
    pricing: dict[str, Any] = {}
    if args.price_per_task is not None:
        pricing["pricePerTask"] = args.price_per_task
    if args.price_per_minute is not None:
        pricing["pricePerMinute"] = args.price_per_minute
    if args.currency:
        pricing["currency"] = args.currency
    with registry_client(env, need_key=True) as registry:
        record, created = registry.publish(
            card.document,
            billing_mode=args.billing_mode,
            pricing=pricing or None,
            listing=args.listing,
        )
    name = record.get("agentName", "?")
    price = record.get("pricing") or {}
    shown = ", ".join(f"{k} {v}" for k, v in price.items()) or "no price"
    print(
        f"{'registered' if created else 'updated'} agent {name}: billing {record.get('billingMode')}"
        f" ({shown}), listing {record.get('listing')}",
        flush=True,
    )
    print(f"# next: blocks-run (in the card's folder), then: {example_send(card)}", flush=True)
    return EXIT_OK


def _price(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 0 or number != number or number in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"a price must be a finite number ≥ 0, got {value}")
    return int(number) if number.is_integer() else number


def register(commands: Any) -> None:
    """Add ``publish`` to the ``blocks`` subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "publish",
        help="register or update an agent card in the registry",
        description=(
            "Register the agent of CARD (default ./agent-card.json) with a billing mode and "
            "pricing, or update it. free agents have no price; paid agents need "
            "--price-per-task or --price-per-minute. Uses BLOCKS_API_KEY."
        ),
    )
    parser.add_argument(
        "card", metavar="CARD", nargs="?", default=CARD_FILE, help=f"default ./{CARD_FILE}"
    )
    parser.add_argument(
        "--billing-mode",
        choices=("free", "paid"),
        default="free",
        help="free (playground keyset) or paid (network keyset); default free",
    )
    parser.add_argument("--price-per-task", type=_price, metavar="X", help="paid agents")
    parser.add_argument("--price-per-minute", type=_price, metavar="X", help="paid agents")
    parser.add_argument("--currency", metavar="CODE", help="pricing currency, e.g. USD")
    parser.add_argument(
        "--listing",
        choices=("public", "private"),
        help="who can see it (default: public for a new agent, unchanged on update)",
    )
    parser.set_defaults(handler=guarded("blocks publish", run_publish))
