"""Consumer of examples/stock-sim: start a price feed, print some ticks, cancel it.

python examples/stock-sim-consumer/consumer.py --ticks 5 ACME INITECH
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from blocks_network import TaskClient, text_part

AGENT = "stock_sim"
TIMEOUT_S = 30.0


def run(
    client: TaskClient,
    symbols: list[str],
    *,
    ticks: int = 5,
    interval_s: float = 1.0,
    duration_minutes: int = 1,
    on_tick: Any = None,
) -> dict[str, Any]:
    """Read ``ticks`` ticks (one event per symbol each), cancel the feed, return the result."""
    request = json.dumps({"symbols": symbols, "intervalSeconds": interval_s})
    session = client.send_message(
        AGENT, [text_part(request)], task_kind="pipe", duration=duration_minutes, stream=True
    )
    with session:
        prices = session.wait_for_stream("prices", timeout=TIMEOUT_S).open()
        events = []
        for event in prices.events(timeout=TIMEOUT_S):
            events.append(event)
            if on_tick is not None:
                on_tick(event)
            if event["tick"] >= ticks and event["symbol"] == symbols[-1]:
                break
        session.cancel()
        terminal = session.wait_for_terminal(timeout=TIMEOUT_S)
        summary = json.loads(session.download_artifact(session.list_artifacts()[0]).data)
        return {
            "taskId": session.task_id,
            "state": terminal.state,
            "events": events,
            "summary": summary,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Follow the stock_sim price feed.")
    parser.add_argument("symbols", nargs="*", default=["ACME", "INITECH"])
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    args = parser.parse_args(argv)

    def show(event: dict[str, Any]) -> None:
        print(f"tick {event['tick']:>3}  {event['symbol']:<8} {event['price']:>9.2f}", flush=True)

    with TaskClient.create(billing_mode="free") as client:
        result = run(client, args.symbols, ticks=args.ticks, interval_s=args.interval, on_tick=show)
    print(f"task {result['taskId']}: {result['state']} after {result['summary']['ticks']} ticks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
