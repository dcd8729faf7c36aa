"""The registry's in-memory records follow every write (register, scaling, offline, delete)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocks_devnet.backend.builtin_agents import BUILTIN_AGENT_CARDS
from blocks_devnet.backend.registry import AgentRegistry
from blocks_devnet.store.database import Database


@pytest.fixture
def registry() -> Iterator[AgentRegistry]:
    db = Database(None)
    yield AgentRegistry(db)
    db.close()


def _register(registry: AgentRegistry) -> str:
    card = BUILTIN_AGENT_CARDS[0]
    record, _ = registry.register_or_update(
        card=card, billing_mode="free", org_id="org_1", owner_user_id="user_1"
    )
    return record.agent_name


def test_reads_after_each_write_see_the_write(registry: AgentRegistry) -> None:
    assert registry.get("echo") is None
    name = _register(registry)
    first = registry.get(name)
    assert first is not None and registry.get(name) is first  # served from memory

    registry.set_forced_offline(name, True)
    offline = registry.get(name)
    assert offline is not None and offline.forced_offline

    registry.update_scaling(name, concurrency=7)
    scaled = registry.get(name)
    assert scaled is not None and scaled.scaling.concurrency == 7 and scaled.forced_offline

    assert registry.delete(name)
    assert registry.get(name) is None


def test_re_registering_replaces_the_remembered_record(registry: AgentRegistry) -> None:
    name = _register(registry)
    before = registry.get(name)
    card = dict(BUILTIN_AGENT_CARDS[0])
    card["identity"] = {**card["identity"], "description": "changed"}
    registry.register_or_update(
        card=card, billing_mode="free", org_id="org_1", owner_user_id="user_1"
    )
    after = registry.get(name)
    assert before is not None and after is not None
    assert after.card["identity"]["description"] == "changed"
    assert before.card["identity"]["description"] != "changed"
