"""The dispatch choice and the capacity ledger, without I/O (fake clock)."""

from __future__ import annotations

from blocks_devnet.backend.tasks.dispatch import (
    CapacityLedger,
    InstanceView,
    choose_instance,
    instance_views,
    parse_reported_state,
)
from blocks_network.protocol.constants import PROTOCOL_VERSION
from tests.support.fake_clock import FakeClock


def view(
    instance_id: str, load: int, concurrency: int = 2, versions: tuple[str, ...] | None = None
) -> InstanceView:
    return InstanceView(instance_id, load, concurrency, versions)


def test_least_loaded_instance_wins() -> None:
    chosen = choose_instance([view("a", 2, 3), view("b", 0, 3), view("c", 1, 3)], PROTOCOL_VERSION)
    assert chosen is not None and chosen.instance_id == "b"


def test_full_instances_are_skipped_and_none_when_all_full() -> None:
    assert choose_instance([view("a", 2, 2), view("b", 1, 1)], PROTOCOL_VERSION) is None
    chosen = choose_instance([view("a", 2, 2), view("b", 3, 4)], PROTOCOL_VERSION)
    assert chosen is not None and chosen.instance_id == "b"


def test_unlimited_concurrency_always_has_room() -> None:
    chosen = choose_instance([view("a", 50, 0)], PROTOCOL_VERSION)
    assert chosen is not None and chosen.instance_id == "a"


def test_ties_prefer_more_free_slots_then_the_smaller_id() -> None:
    chosen = choose_instance([view("a", 1, 2), view("b", 1, 5)], PROTOCOL_VERSION)
    assert chosen is not None and chosen.instance_id == "b"
    chosen = choose_instance([view("z", 0, 1), view("y", 0, 1)], PROTOCOL_VERSION)
    assert chosen is not None and chosen.instance_id == "y"


def test_instances_without_the_protocol_version_are_skipped() -> None:
    old = view("old", 0, 5, ("2020-01-01",))
    assert choose_instance([old], PROTOCOL_VERSION) is None
    chosen = choose_instance([old, view("new", 4, 5, (PROTOCOL_VERSION,))], PROTOCOL_VERSION)
    assert chosen is not None and chosen.instance_id == "new"
    # Not announcing versions is accepted, like a StartTask without one.
    assert choose_instance([view("quiet", 0, 1, None)], PROTOCOL_VERSION) is not None


def test_reported_state_is_read_leniently() -> None:
    state = parse_reported_state(
        {"activeTasks": 2, "concurrency": 0, "protocolVersions": [PROTOCOL_VERSION]}
    )
    assert (state.active_tasks, state.concurrency, state.protocol_versions) == (
        2,
        0,
        (PROTOCOL_VERSION,),
    )
    odd = parse_reported_state({"activeTasks": True, "concurrency": -1, "protocolVersions": "x"})
    assert (odd.active_tasks, odd.concurrency, odd.protocol_versions) == (None, None, None)
    # Any client can set presence state: a number too large for a float is still read.
    huge = parse_reported_state({"activeTasks": 10**400, "concurrency": 2.0})
    assert (huge.active_tasks, huge.concurrency) == (10**400, 2)
    assert parse_reported_state({"concurrency": 2.5}).concurrency is None
    assert parse_reported_state(None).concurrency is None


def test_views_use_our_counts_and_the_default_concurrency() -> None:
    ledger = CapacityLedger(release_grace_seconds=0)
    ledger.assign("a", "t1")
    ledger.assign("a", "t2")
    views = {
        v.instance_id: v
        for v in instance_views(
            {"a": {"activeTasks": 0, "concurrency": 3}, "b": {}}, ledger, default_concurrency=4
        )
    }
    assert (views["a"].load, views["a"].concurrency) == (2, 3)
    assert (views["b"].load, views["b"].concurrency) == (0, 4)


def test_freed_slot_cools_until_presence_confirms_it() -> None:
    clock = FakeClock(100.0)
    ledger = CapacityLedger(release_grace_seconds=2.0, clock=clock)
    ledger.assign("a", "t1")
    assert ledger.release("t1") == "a"
    # The instance still reports the finished task: the slot is not free yet.
    assert ledger.load("a", reported_active=1) == 1
    # Its state caught up: free.
    assert ledger.load("a", reported_active=0) == 0


def test_freed_slot_is_free_after_the_grace_even_without_confirmation() -> None:
    clock = FakeClock(100.0)
    ledger = CapacityLedger(release_grace_seconds=2.0, clock=clock)
    ledger.assign("a", "t1")
    ledger.release("t1")
    assert ledger.load("a", reported_active=None) == 1
    clock.now += 2.5
    assert ledger.load("a", reported_active=1) == 0


def test_only_slots_full_by_unconfirmed_frees_count_as_confirming() -> None:
    ledger = CapacityLedger(release_grace_seconds=2.0, clock=FakeClock(100.0))
    for task in ("t1", "t2", "t3", "t4"):
        ledger.assign("a", task)
    ledger.release("t1")
    ledger.release("t2")
    # Concurrency 3: two held plus two cooling is full, but only by one cooling slot.
    full = InstanceView("a", ledger.load("a", reported_active=4), 3)
    assert not full.has_capacity()
    assert ledger.confirming_slots([full]) == 1
    # Held tasks alone fill it: confirming its frees frees nothing for a new task.
    assert ledger.confirming_slots([InstanceView("a", 4, 2)]) == 0
    assert ledger.confirming_slots([InstanceView("b", 2, 2)]) == 0  # nothing cooling


def test_release_of_an_unknown_task_is_harmless() -> None:
    ledger = CapacityLedger()
    assert ledger.release("nope") is None
    ledger.assign("a", "t1")
    assert ledger.inflight("a") == frozenset({"t1"})
    ledger.release("t1", cool=False)
    assert ledger.instances() == [] and ledger.load("a", None) == 0


def test_inherited_tasks_stop_counting_while_the_instance_stays_silent() -> None:
    clock = FakeClock()
    ledger = CapacityLedger(release_grace_seconds=0, unannounced_grace_seconds=4.0, clock=clock)
    ledger.assign("a", "t_before_restart", inherited=True)
    ledger.assign("a", "t_new")
    # After a restart the instance may have lost the inherited task. It may announce its
    # state any moment: until the grace passed, everything counts ...
    assert ledger.load("a", None) == 2
    clock.now += 3.9
    assert ledger.load("a", None) == 2
    # ... then only a StartTask can wake it (and make it announce): the old task stops
    # blocking its slot.
    clock.now += 0.1
    assert ledger.load("a", None) == 1
    assert ledger.load("a", 0) == 2  # announced: every task counts until reconciled
    assert ledger.load("a", None) == 2  # silent again: a fresh grace
    assert ledger.is_inherited("t_before_restart") and not ledger.is_inherited("t_new")
    ledger.release("t_before_restart")
    assert not ledger.is_inherited("t_before_restart")
    assert ledger.load("a", None) == 1
