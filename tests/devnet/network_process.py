"""``python -m tests.devnet.network_process DATA_DIR HEAD_S IDLE_S BODY_MIN BODY_WINDOW_S``:
a local network in a process of its own, with the connection timeouts given, logging at
INFO to stderr as ``blocks devnet`` does. It prints one JSON line (url, origin, the
playground keyset) once serving, and stops when its stdin closes."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.connection_guard import ConnectionTimeouts
from blocks_devnet.network import LocalNetwork


def main(argv: list[str]) -> None:
    data_dir, head, idle, body_min, body_window = argv
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    timeouts = ConnectionTimeouts(
        head_seconds=float(head),
        idle_seconds=float(idle),
        body_min_bytes=int(body_min),
        body_window_seconds=float(body_window),
    )
    config = DevnetConfig(port=0, data_dir=Path(data_dir), connection_timeouts=timeouts)
    with LocalNetwork(config) as network:
        keyset = network.keysets["playground"]
        ready = {"url": network.url, "origin": network.origin, "keyset": vars(keyset)}
        print(json.dumps(ready), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
