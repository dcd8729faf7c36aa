"""``python -m blocks_devnet.realtime``: a standalone realtime server (benchmarks, debugging).

Prints one JSON line with the origin and keys once it serves; stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from blocks_devnet.data_dir_lock import DataDirInUseError
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.server import RealtimeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blocks_devnet.realtime", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="omit to keep everything in memory"
    )
    parser.add_argument("--access", action="store_true", help="enforce Access Manager tokens")
    parser.add_argument("--long-poll-seconds", type=float, default=280.0)
    args = parser.parse_args(argv)

    keyset = Keyset.generate("default", access_enabled=args.access)
    server = RealtimeServer(
        [keyset],
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        long_poll_seconds=args.long_poll_seconds,
    )
    try:
        server.start()
    except DataDirInUseError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        line = {
            "origin": server.origin,
            "publish_key": keyset.publish_key,
            "subscribe_key": keyset.subscribe_key,
            "secret_key": keyset.secret_key,
        }
        print(json.dumps(line), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
