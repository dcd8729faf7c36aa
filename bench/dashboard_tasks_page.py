"""Dashboard tasks page at scale (issue 17): 100,000 task records, page time p50/p95.

Usage: python bench/dashboard_tasks_page.py [--tasks 100000] [--requests 200]

A local network (in this process, data on disk) is filled with ``--tasks`` finished task
records of the development user (direct store inserts: 5 agents, three terminal states,
one per second of history) plus 10 % of another organisation's, which the page must skip. Then, signed in
as the development user, the tasks page is fetched ``--requests`` times per variant over
HTTP on loopback (first page, filtered by agent, by state, and a page deep in the history
through its cursor), and the same page's regions are rendered on the server loop alone
(server time, no HTTP). Target: ≤ 200 ms server time per page at 100,000 records.
Then the overview's server time, whole as its live feed renders it (tasks by state from
the dashboard's short-lived cache, dashboard/counts.py) and part by part (the count by
state uncached; the recent failures as served, without ListTasks' exact total, and with it).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from html import unescape
from pathlib import Path

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.backend.context import BackendContext
from blocks_devnet.backend.principal import Principal
from blocks_devnet.backend.tasks.store import TaskRecord, new_task_id
from blocks_devnet.dashboard import counts, pages, queries, routes
from blocks_devnet.network import LocalNetwork

AGENTS = ("alpha", "beta", "gamma", "delta", "epsilon")
#: Finished tasks only: active ones without a live instance would keep the network's task
#: scanner busy failing them, which is not what this measures.
STATES = ("completed", "completed", "completed", "completed", "failed", "canceled")
BATCH = 10_000


def _record(index: int, owner: str, org: str, now_ms: int) -> TaskRecord:
    created = now_ms - index * 1000
    state = STATES[index % len(STATES)]
    return TaskRecord(
        task_id=new_task_id(),
        agent_name=AGENTS[index % len(AGENTS)],
        agent_id=f"agt_{AGENTS[index % len(AGENTS)]}",
        agent_org_id=org,
        org_id=org,
        owner_id=owner,
        caller_claims={},
        billing_mode="free",
        environment="playground",
        state=state,
        task_kind="request",
        has_stream=False,
        request_parts=[{"partId": "text", "text": "x"}],
        protocol_version="2026-05-01",
        max_running_ms=60_000,
        created_ms=created,
        updated_ms=created + 50,
        ended_ms=created + 50,
        error="boom" if state == "failed" else None,
    )


def fill(network: LocalNetwork, tasks: int) -> None:
    dev = network.dev_identity
    other_user, other_org, _key = network.call(
        lambda: network.context.identity.create_user("bench-other")
    )
    now_ms = int(time.time() * 1000)
    plan = [(i, dev.user_id, dev.org_id) for i in range(tasks)]
    plan += [(i, other_user, other_org) for i in range(tasks // 10)]
    for start in range(0, len(plan), BATCH):
        chunk = plan[start : start + BATCH]

        def insert(chunk: list[tuple[int, str, str]] = chunk) -> None:
            store = network.context.tasks.store
            for index, owner, org in chunk:
                store.insert(_record(index, owner, org, now_ms))

        network.call(insert, timeout=120)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        config = DevnetConfig(port=0, data_dir=Path(data_dir), long_poll_seconds=5)
        with LocalNetwork(config) as network:
            started = time.perf_counter()
            fill(network, args.tasks)
            print(
                f"filled {args.tasks} (+{args.tasks // 10} other org) tasks in "
                f"{time.perf_counter() - started:.1f} s"
            )
            jar = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            opener = urllib.request.build_opener(jar)
            form = urllib.parse.urlencode({"api_key": network.api_key}).encode()
            opener.open(network.url + "/dashboard/login", data=form, timeout=30).read()
            first = opener.open(network.url + "/dashboard/tasks", timeout=30).read().decode()
            for _ in range(20):  # warm-up: the fill's commit and checkpoint are behind us
                opener.open(network.url + "/dashboard/tasks", timeout=30).read()
            older = re.search(r'href="/dashboard/tasks\?([^"]+)" rel="next"', first)
            assert older is not None, "the first page has no next page"
            deep = dict(urllib.parse.parse_qsl(unescape(older.group(1))))
            variants = {
                "first page": {},
                "agent filter": {"agent": "gamma"},
                "state filter": {"state": "failed"},
                "second page": deep,
            }
            print(f"{'variant':<14} {'rows':>5}  HTTP round trip              server render")
            for name, query in variants.items():
                url = network.url + "/dashboard/tasks?" + urllib.parse.urlencode(query)
                rows, http_times = 0, []
                for _ in range(args.requests):
                    begin = time.perf_counter()
                    body = opener.open(url, timeout=30).read().decode()
                    http_times.append(time.perf_counter() - begin)
                    rows = body.count('class="task-id"')
                server_times = []
                for _ in range(args.requests):
                    server_times.append(
                        network.call(
                            lambda q=query: _server_time(
                                lambda ctx, who: routes.tasks_regions(ctx, who, q), network
                            )
                        )
                    )
                print(
                    f"{name:<14} {rows:>5}  {percentiles(http_times)}  {percentiles(server_times)}"
                )
            print("overview, server time of each part (its live feed renders it every 0.5 s):")
            parts = {
                "whole (as served)": lambda ctx, who: routes.overview_regions(ctx, who, {}),
                "count by state": lambda ctx, who: counts.count_by_state(ctx.db, who),
                "chart": lambda ctx, who: queries.throughput(ctx, who, pages.now_ms()),
                "failures": queries.recent_failures,
                # What the failures part cost before it skipped ListTasks' exact total.
                "failures + total": lambda ctx, who: queries.tasks_page(
                    ctx, who, state="failed", limit=queries.RECENT_FAILURES
                ),
                "agents": queries.agents,
            }
            for name, part in parts.items():
                times = [
                    network.call(lambda p=part: _server_time(p, network))
                    for _ in range(args.requests)
                ]
                print(f"  {name:<20} {'':>17} {percentiles(times)}")


def _server_time(
    part: Callable[[BackendContext, Principal], object], network: LocalNetwork
) -> float:
    """Server time of one call of ``part`` as the development user (on the server loop)."""
    dev = network.dev_identity
    principal = Principal(user_id=dev.user_id, org_id=dev.org_id, kind="consumer")
    begin = time.perf_counter()
    part(network.context, principal)
    return time.perf_counter() - begin


if __name__ == "__main__":
    main()
