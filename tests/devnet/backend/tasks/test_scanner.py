"""The safety net's decisions (pure), one rule per test."""

from __future__ import annotations

from dataclasses import replace

from blocks_devnet.backend.tasks.scanner import (
    CompleteExpired,
    Expire,
    Fail,
    Redispatch,
    decide,
    reconcile,
)
from blocks_devnet.backend.tasks.settings import TaskSettings
from blocks_devnet.backend.tasks.store import TaskRecord

SETTINGS = TaskSettings(expire_grace_seconds=5, orphan_queue_seconds=10)
NOW = 1_000_000


def record(**changes: object) -> TaskRecord:
    base = TaskRecord(
        task_id="t_1",
        agent_name="worker",
        agent_id="agt_1",
        agent_org_id="org_a",
        org_id="org_c",
        owner_id="user_c",
        caller_claims={},
        billing_mode="free",
        environment="playground",
        state="running",
        task_kind="request",
        has_stream=False,
        request_parts=[],
        protocol_version="2026-05-01",
        max_running_ms=30_000,
        created_ms=NOW - 60_000,
        updated_ms=NOW - 60_000,
        instance_id="AG-worker-1",
        dispatched_ms=NOW - 10_000,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_request_within_max_running_time_is_left_alone() -> None:
    assert decide(record(), NOW, frozenset({"AG-worker-1"}), SETTINGS) is None


def test_request_past_max_running_time_fails_with_a_clear_error() -> None:
    action = decide(record(dispatched_ms=NOW - 31_000), NOW, frozenset({"AG-worker-1"}), SETTINGS)
    assert isinstance(action, Fail) and "maxRunningTimeSec (30 s)" in action.error


def test_instance_gone_fails_its_tasks() -> None:
    action = decide(record(), NOW, frozenset({"AG-worker-2"}), SETTINGS)
    assert action == Fail("agent instance AG-worker-1 went offline")


def test_instance_gone_before_starting_the_task_gets_it_taken_back() -> None:
    submitted = record(state="submitted")
    assert decide(submitted, NOW, frozenset({"AG-worker-2"}), SETTINGS) == Redispatch()
    assert decide(submitted, NOW, frozenset({"AG-worker-1"}), SETTINGS) is None
    assert decide(submitted, NOW, None, SETTINGS) is None


def test_presence_not_trusted_yet_means_no_offline_verdict() -> None:
    assert decide(record(), NOW, None, SETTINGS) is None


def test_pipe_expires_first_then_completes_after_the_grace() -> None:
    pipe = record(task_kind="pipe", duration=1, duration_expires_at_ms=NOW - 1)
    present = frozenset({"AG-worker-1"})
    assert decide(replace(pipe, duration_expires_at_ms=NOW + 1), NOW, present, SETTINGS) is None
    assert decide(pipe, NOW, present, SETTINGS) == Expire()
    sent = replace(pipe, expire_sent_ms=NOW - 4_000)
    assert decide(sent, NOW, present, SETTINGS) is None
    assert (
        decide(replace(sent, expire_sent_ms=NOW - 5_000), NOW, present, SETTINGS)
        == CompleteExpired()
    )


def test_pipe_is_not_bound_by_max_running_time() -> None:
    pipe = record(
        task_kind="pipe",
        duration=60,
        duration_expires_at_ms=NOW + 60_000,
        dispatched_ms=NOW - 40_000,
    )
    assert decide(pipe, NOW, frozenset({"AG-worker-1"}), SETTINGS) is None


def test_queued_task_fails_only_after_the_agent_stayed_empty() -> None:
    queued = record(state="queued", instance_id=None, dispatched_ms=None)
    assert decide(queued, NOW, frozenset(), SETTINGS, agent_empty_since_ms=NOW - 9_000) is None
    action = decide(queued, NOW, frozenset(), SETTINGS, agent_empty_since_ms=NOW - 10_000)
    assert isinstance(action, Fail) and "no instance of agent 'worker'" in action.error
    assert decide(queued, NOW, frozenset({"AG-x"}), SETTINGS, agent_empty_since_ms=None) is None


# --- reconcile: tasks handed out before a restart, on a live instance ---------------------

GRACE = 4_000


def test_reconcile_waits_for_the_instance_to_announce_its_state() -> None:
    inherited = [record()]
    assert reconcile(inherited, 1, None, None, NOW, GRACE) == (None, [])


def test_reconcile_leaves_tasks_the_instance_still_counts() -> None:
    inherited = [record(task_id="t_1"), record(task_id="t_2", state="submitted")]
    assert reconcile(inherited, 2, 2, None, NOW, GRACE) == (None, [])
    assert reconcile(inherited, 3, 5, NOW - GRACE, NOW, GRACE) == (None, [])


def test_reconcile_acts_only_after_the_shortfall_lasted_the_grace() -> None:
    running = record(task_id="t_run", started_ms=NOW - 9_000)
    waiting = record(task_id="t_wait", state="submitted")
    since, actions = reconcile([running, waiting], 2, 0, None, NOW, GRACE)
    assert (since, actions) == (NOW, [])
    assert reconcile([running, waiting], 2, 0, since, NOW + GRACE - 1, GRACE) == (since, [])
    since, actions = reconcile([running, waiting], 2, 0, since, NOW + GRACE, GRACE)
    assert since is None
    (fail_run, redispatch_wait) = actions
    assert fail_run[0] is running and isinstance(fail_run[1], Fail)
    assert "AG-worker-1 no longer reports the task" in fail_run[1].error
    assert redispatch_wait == (waiting, Redispatch())


def test_reconcile_with_a_partial_count_fails_the_oldest_started_and_takes_nothing_back() -> None:
    old = record(task_id="t_old", started_ms=NOW - 50_000)
    young = record(task_id="t_young", started_ms=NOW - 5_000)
    waiting = record(task_id="t_wait", state="submitted")
    _, actions = reconcile([young, waiting, old], 3, 1, NOW - GRACE, NOW, GRACE)
    assert [(r.task_id, type(a)) for r, a in actions] == [("t_old", Fail), ("t_young", Fail)]
    # Only as many as the instance is short of.
    _, actions = reconcile([young, waiting, old], 3, 2, NOW - GRACE, NOW, GRACE)
    assert [r.task_id for r, _ in actions] == ["t_old"]
