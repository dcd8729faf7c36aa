"""An agent's registry record: card, billing mode, pricing, listing and scaling.

Plain values with their wire form (protocol.md §5.7); storage lives in ``registry.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from blocks_network.protocol.agent_card import (
    AgentCard,
    CardRuntime,
    public_card,
    validate_agent_card,
)
from blocks_network.protocol.channels import normalize_tag_slug
from blocks_network.protocol.constants import (
    BILLING_MODE_ENVIRONMENTS,
    DEFAULT_CONCURRENCY,
    DEFAULT_EXPECTED_INSTANCES,
    DEFAULT_MAX_PENDING_BACKLOG,
    LISTING_PUBLIC,
    PIPE_DURATION_MAX_MINUTES,
    BillingMode,
)

__all__ = ["SCALING_MAXIMUMS", "AgentPage", "AgentRecord", "Scaling", "scaling_above_maximum"]

#: Largest scaling values a card's ``runtime`` or a connect body may set: generous, and
#: small enough that the milliseconds and token lifetimes derived from them stay sane.
SCALING_MAXIMUMS: Final[dict[str, int]] = {
    "concurrency": 100_000,
    "expectedInstances": 10_000,
    "maxPendingBacklog": 100_000,
    # No task outlives the longest pipe.
    "maxRunningTimeSec": PIPE_DURATION_MAX_MINUTES * 60,
}


def scaling_above_maximum(runtime: CardRuntime) -> str | None:
    """The first ``runtime`` field above :data:`SCALING_MAXIMUMS`, as a sentence, or None."""
    values = {
        "concurrency": runtime.concurrency,
        "expectedInstances": runtime.expected_instances,
        "maxPendingBacklog": runtime.max_pending_backlog,
        "maxRunningTimeSec": runtime.max_running_time_sec,
    }
    for name, value in values.items():
        if value is not None and value > SCALING_MAXIMUMS[name]:
            return f"{name} must be at most {SCALING_MAXIMUMS[name]}"
    return None


@dataclass(frozen=True)
class Scaling:
    """How many instances and tasks the backend should expect (card ``runtime`` / connect)."""

    concurrency: int = DEFAULT_CONCURRENCY
    expected_instances: int = DEFAULT_EXPECTED_INSTANCES
    max_pending_backlog: int = DEFAULT_MAX_PENDING_BACKLOG
    max_running_time_sec: int | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "concurrency": self.concurrency,
            "expectedInstances": self.expected_instances,
            "maxPendingBacklog": self.max_pending_backlog,
        }
        if self.max_running_time_sec is not None:
            wire["maxRunningTimeSec"] = self.max_running_time_sec
        return wire

    @classmethod
    def from_wire(cls, value: Mapping[str, Any]) -> Scaling:
        return cls(
            concurrency=int(value.get("concurrency", DEFAULT_CONCURRENCY)),
            expected_instances=int(value.get("expectedInstances", DEFAULT_EXPECTED_INSTANCES)),
            max_pending_backlog=int(value.get("maxPendingBacklog", DEFAULT_MAX_PENDING_BACKLOG)),
            max_running_time_sec=value.get("maxRunningTimeSec"),
        )


@dataclass(frozen=True)
class AgentRecord:
    """One registered agent. ``card`` is the full card as published (``runtime`` included);
    :meth:`to_wire` serves the public form."""

    agent_id: str
    agent_name: str
    org_id: str
    owner_user_id: str
    card: Mapping[str, Any]
    billing_mode: BillingMode
    listing: str = LISTING_PUBLIC
    pricing: Mapping[str, Any] = field(default_factory=dict)
    scaling: Scaling = field(default_factory=Scaling)
    card_ref: str | None = None
    card_summary: Any = None
    registered_at: int = 0
    forced_offline: bool = False

    @property
    def environment(self) -> str:
        """The keyset environment of the agent's billing mode (free → playground)."""
        return BILLING_MODE_ENVIRONMENTS[self.billing_mode]

    @property
    def description(self) -> str:
        identity = self.card.get("identity")
        text = identity.get("description") if isinstance(identity, Mapping) else None
        return text if isinstance(text, str) else ""

    @property
    def tags(self) -> list[dict[str, Any]]:
        tags = self.card.get("tags")
        return [dict(t) for t in tags if isinstance(t, Mapping)] if isinstance(tags, list) else []

    def tag_slugs(self) -> set[str]:
        """Normalised slugs of every tag id and name (what ``?tag=`` matches)."""
        slugs: set[str] = set()
        for tag in self.tags:
            for key in ("id", "name"):
                if isinstance(tag.get(key), str):
                    slugs.add(normalize_tag_slug(tag[key]))
        slugs.discard("")
        return slugs

    def parsed_card(self) -> AgentCard:
        """The card as a typed AgentCard (it was validated when stored)."""
        return validate_agent_card(self.card)

    def to_wire(self, *, full: bool = True) -> dict[str, Any]:
        """The registry's JSON form (§5.7); ``full=False`` leaves out the card."""
        wire: dict[str, Any] = {
            "agentId": self.agent_id,
            "agentName": self.agent_name,
            "name": self.agent_name,
            "description": self.description,
            "tags": self.tags,
            "scaling": self.scaling.to_wire(),
            "listing": self.listing,
            "billingMode": self.billing_mode,
            "pricing": dict(self.pricing),
            "cardRef": self.card_ref,
            "cardSummary": self.card_summary,
            "registeredAt": _iso(self.registered_at),
            "orgId": self.org_id,
        }
        if full:
            wire["card"] = public_card(self.card)
        return wire


@dataclass(frozen=True)
class AgentPage:
    """One page of a registry listing; ``next`` is the cursor of the following page."""

    agents: list[AgentRecord]
    next: str | None
    total_count: int


def _iso(epoch_ms: int) -> str:
    seconds, ms = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"
