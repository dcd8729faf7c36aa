"""The dashboard's task lists on a real network: what they ask the store for."""

from __future__ import annotations

import pytest

from blocks_devnet.backend.principal import Principal
from blocks_devnet.dashboard import queries
from blocks_network.testing import BlocksTestNetwork
from tests.devnet.backend.tasks.test_scanner import record
from tests.support.sql_spy import counts, read_statements


def test_recent_failures_lists_the_newest_failures_without_counting_them(
    blocks_network: BlocksTestNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendered every 0.5 s per viewer, it shows no total: no COUNT over the visible tasks."""
    network = blocks_network.network
    dev = network.dev_identity
    viewer = Principal(user_id=dev.user_id, org_id=dev.org_id, kind="consumer")
    failed = record(
        task_id="t_recent_failure",
        state="failed",
        error="boom",
        owner_id=dev.user_id,
        org_id=dev.org_id,
        created_ms=2**42,  # year 2109: newer than any other test's task
    )
    network.call(lambda: network.context.tasks.store.insert(failed))
    statements = read_statements(network.context.db, monkeypatch)

    shown = network.call(lambda: queries.recent_failures(network.context, viewer))

    assert shown[0]["taskId"] == "t_recent_failure" and shown[0]["state"] == "failed"
    assert statements, "the list was read through the database"
    assert not counts(statements), statements
    # The tasks page shows a total: it still counts (as the ListTasks RPC always does).
    statements.clear()
    page = network.call(lambda: queries.tasks_page(network.context, viewer, state="failed"))
    assert page["totalCount"] >= 1
    assert counts(statements)
