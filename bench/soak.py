"""Soak: disk and memory of the local network under sustained echo load.

Usage: python bench/soak.py [--minutes 10] [--concurrency 32] [--retention-days N]
                            [--wal-limit-mb N] [--log FILE]

The same three processes as ``bench/agent_throughput.py`` (the network, one echo instance,
this load generator keeping N tasks in flight), run for ``--minutes``. Every 30 s it prints
one JSON line: tasks finished, the network's RSS, and the data dir's database and WAL
sizes. At the end the network stops cleanly (which checkpoints) and the last line gives the
database size per finished task. ``--retention-days`` and ``--wal-limit-mb`` are passed to
``DevnetConfig`` only when given, so the script also runs against older commits;
``--log FILE`` writes the network's log there (WAL restarts and their cost at debug).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_throughput import (
    Consumer,
    Watcher,
    agent_process,
    consumer_token,
    network_process,
    proc_status,
)

NETWORK_SCRIPT = """
import json, logging, sys, pathlib
if sys.argv[3]:
    logging.basicConfig(filename=sys.argv[3], level=logging.INFO)
    logging.getLogger("blocks_devnet.store.database").setLevel(logging.DEBUG)
from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.network import LocalNetwork
data = pathlib.Path(sys.argv[1])
extra = json.loads(sys.argv[2])
with LocalNetwork(DevnetConfig(port=0, data_dir=data, **extra)) as net:
    keyset = net.keysets["playground"]
    info = {"host": "127.0.0.1", "port": net.port, "subscribe_key": keyset.subscribe_key,
            "publish_key": keyset.publish_key, "secret_key": keyset.secret_key, **net.env()}
    print(json.dumps(info), flush=True)
    sys.stdin.read()
"""
SAMPLE_SECONDS = 30.0
DATABASE_FILE = "devnet.sqlite3"


def file_mb(path: Path) -> float:
    return path.stat().st_size / 1e6 if path.exists() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--retention-days", type=float)
    parser.add_argument("--wal-limit-mb", type=float)
    parser.add_argument("--log", default="", help="the network's log (checkpoints at debug)")
    args = parser.parse_args()
    extra: dict[str, Any] = {}
    if args.retention_days is not None:
        extra["retention_days"] = args.retention_days
    if args.wal_limit_mb is not None:
        extra["wal_limit_mb"] = args.wal_limit_mb
    data = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    db, wal = data / DATABASE_FILE, data / f"{DATABASE_FILE}-wal"
    done = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + args.minutes * 60
    began = time.monotonic()
    with (
        network_process(NETWORK_SCRIPT, str(data), json.dumps(extra), args.log) as net,
        agent_process(net, args.concurrency),
    ):
        token, owner = consumer_token(net)
        watcher = Watcher(net)

        def drive(consumer: Consumer) -> None:
            n = 0
            while time.monotonic() < stop_at:
                consumer.run_one(f"hello {n}")
                n += 1
                with lock:
                    done[0] += 1

        threads = [
            threading.Thread(
                target=drive, args=(Consumer(net, token, owner, watcher),), daemon=True
            )
            for _ in range(args.concurrency)
        ]
        for thread in threads:
            thread.start()
        last_done, last_at = 0, time.monotonic()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(max(0.0, last_at + SAMPLE_SECONDS - time.monotonic()))
            now = time.monotonic()
            if now < last_at + SAMPLE_SECONDS:
                continue  # every consumer stopped: the last line follows
            with lock:
                finished = done[0]
            _threads, rss = proc_status(net.pid)
            sample = {
                "t_s": round(now - began),
                "tasks": finished,
                "tasks_per_s": round((finished - last_done) / (now - last_at), 1),
                "network_rss_mb": round(rss, 1),
                "db_mb": round(file_mb(db), 1),
                "wal_mb": round(file_mb(wal), 1),
            }
            print(json.dumps(sample), flush=True)
            last_done, last_at = finished, now
        watcher.close()
    with lock:
        finished = done[0]
    size = db.stat().st_size
    print(
        json.dumps(
            {
                "stopped": True,
                "tasks": finished,
                "db_mb": round(size / 1e6, 1),
                "wal_mb": round(file_mb(wal), 1),
                "db_bytes_per_task": round(size / max(1, finished)),
                "data_dir": str(data),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
