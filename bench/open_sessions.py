"""Threads, connections and memory a consumer holds for N open sessions (issue 16).

Each session follows its own task channel, as TaskSession does
(``SessionRealtime.subscription``). ``--mode grouped`` gives every session a read token
that reads all the bench's channels (as the backend's T4 for a sole-member org's owner),
so sessions share multi-channel polls; ``--mode loop`` gives none (each session polls
alone on the sessions' poll loop, one selector thread: the figures before grouping);
``--mode threads`` is the former thread-per-session loop (``ChannelSubscription``). The
sessions are opened on the realtime
layer directly (a standalone realtime server in its own process, open keyset): creating
10,000 tasks through the backend would measure the backend, not the subscriptions.

After every poll is parked, one message is published on each channel and the time until
every session has received it is reported.

    python bench/open_sessions.py --sessions 1000 10000 --mode grouped
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from _servers import realtime_server_process
from blocks_devnet.realtime.access_tokens import READ, TokenGrant, issue_token
from blocks_network.consumer.realtime import SessionRealtime
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.transport.subscription import ChannelSubscription, SubscriptionSink

if TYPE_CHECKING:
    from blocks_network.transport.poll_loop import SubscriptionMember

_PUBLISHERS = 4
#: Channels named like the local network's task channels (u.{orgId}.t_{32 hex}), so a
#: shared poll holds as many as it would for real tasks.
_ORG = "org_0123456789abcdef"


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _wait(condition: object, timeout_s: float) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        # Counting 10,000 sockets in /proc takes CPU the polls being opened need.
        time.sleep(0.5)
    return True


def _publish_all(origin: str, pub: str, sub: str, channels: list[str]) -> None:
    def publish(first: int) -> None:
        host, port = origin.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = quote(json.dumps({"type": "terminal", "state": "completed"}), safe="")
        for channel in channels[first::_PUBLISHERS]:
            conn.request("GET", f"/publish/{pub}/{sub}/0/{channel}/0/{body}?uuid=bench&store=0")
            conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(_PUBLISHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(sessions: int, mode: str) -> dict[str, float | int | str]:
    with realtime_server_process("--long-poll-seconds", "280") as server:
        endpoint = RealtimeEndpoint(origin=server.origin, ssl=False)
        http = HttpClient()
        realtime = SessionRealtime(endpoint, server.subscribe_key, server.publish_key, http)
        received = 0
        lock = threading.Lock()
        everyone = threading.Event()

        def message(*_: object) -> None:
            nonlocal received
            with lock:
                received += 1
                if received == sessions:
                    everyone.set()

        sink = SubscriptionSink(message, lambda: None)
        threads_before = threading.active_count()
        sockets_before = _sockets()
        rss_before = _rss_mb()
        cursor = realtime.cursor()
        channels = [f"u.{_ORG}.t_{i:032x}" for i in range(sessions)]
        started = time.perf_counter()
        subs: list[ChannelSubscription | SubscriptionMember] = []  # main: MultiplexedSubscription
        token = _org_token() if mode == "grouped" else None
        for channel in channels:
            sub: ChannelSubscription | SubscriptionMember
            if mode != "threads":
                sub = realtime.subscription(channel, token, cursor, sink)
            else:
                threads, connections = realtime.polls
                sub = ChannelSubscription(
                    endpoint=endpoint,
                    subscribe_key=server.subscribe_key,
                    channel=channel,
                    token=None,
                    user_id="bench",
                    cursor=cursor,
                    sink=sink,
                    threads=threads,
                    connections=connections,
                )
            sub.start()
            subs.append(sub)
        if mode == "grouped":
            groups, loop = realtime.poll_groups, realtime._loop

            def all_parked() -> bool:
                counts = groups.channel_counts
                return sum(counts) == sessions and loop.watched == len(counts)

            parked = _wait(all_parked, 300)
        else:
            parked = _wait(lambda: _sockets() - sockets_before >= sessions, 300)
        opened_s = time.perf_counter() - started
        time.sleep(1.0)  # let the last polls reach the server
        result: dict[str, float | int | str] = {
            "mode": mode,
            "polls": len(realtime.poll_groups.channel_counts) if mode == "grouped" else sessions,
            "sessions": sessions,
            "parked": str(parked),
            "open_s": round(opened_s, 2),
            "threads": threading.active_count() - threads_before,
            "sockets": _sockets() - sockets_before,
            "rss_mb": round(_rss_mb() - rss_before, 1),
            "server_rss_mb": round(server.rss_mb(), 1),
        }
        started = time.perf_counter()
        _publish_all(server.origin, server.publish_key, server.subscribe_key, channels)
        delivered = everyone.wait(300)
        result["deliver_all_s"] = round(time.perf_counter() - started, 2)
        result["delivered"] = received if not delivered else sessions
        result["threads_after_delivery"] = threading.active_count() - threads_before
        for sub in subs:
            sub.stop()
        realtime.close()
        http.close()
        return result


def _org_token() -> str:
    """A read token on every task channel of ``_ORG`` (the open keyset does not check it)."""
    # Imported here: ``--mode loop`` also runs against main's tree, which lacks it.
    from blocks_devnet.backend.grants import org_task_channels_pattern

    grant = TokenGrant(
        issued_at=int(time.time()),
        ttl_minutes=120,
        channel_patterns={org_task_channels_pattern(_ORG): READ},
    )
    return issue_token(grant, "bench-secret")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--mode", choices=["grouped", "loop", "threads"], default="grouped")
    args = parser.parse_args()
    for sessions in args.sessions:
        print(json.dumps(run(sessions, args.mode)), flush=True)


if __name__ == "__main__":
    main()
