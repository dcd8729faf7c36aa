"""The agent registry: who publishes which agent, with what card, billing mode and listing.

Agent names are global (one record per name); the organisation that registered a name owns
it. Private agents exist only for their own organisation: every read filters through
:meth:`AgentRegistry.visible_to`, so callers from elsewhere see "not found".
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import sqlite3
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from blocks_devnet.backend.agent_record import (
    AgentPage,
    AgentRecord,
    Scaling,
    scaling_above_maximum,
)
from blocks_devnet.backend.errors import CONFLICT, BackendError, bad_request, forbidden
from blocks_devnet.backend.principal import Principal
from blocks_devnet.store.database import Database
from blocks_network.protocol.agent_card import AgentCard, validate_agent_card
from blocks_network.protocol.channels import normalize_tag_slug
from blocks_network.protocol.constants import (
    BILLING_MODE_FREE,
    BILLING_MODE_PAID,
    LISTING_PRIVATE,
    LISTING_PUBLIC,
    BillingMode,
)
from blocks_network.protocol.errors import AgentCardError

# AgentRecord and friends are re-exported: callers import them from the registry.
__all__ = [
    "MAX_PAGE_SIZE",
    "AgentPage",
    "AgentRecord",
    "AgentRegistry",
    "Scaling",
    "check_card",
    "check_pricing",
]

logger = logging.getLogger(__name__)

#: Largest page a registry list returns.
MAX_PAGE_SIZE = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    agent_name TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    owner_user_id TEXT NOT NULL,
    card TEXT NOT NULL,
    card_ref TEXT,
    card_summary TEXT,
    billing_mode TEXT NOT NULL,
    pricing TEXT NOT NULL,
    listing TEXT NOT NULL,
    scaling TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    forced_offline INTEGER NOT NULL DEFAULT 0
);
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def check_pricing(billing_mode: str, pricing: object) -> dict[str, Any]:
    """Validate ``pricing`` against ``billing_mode``; returns the normalised pricing object.

    free rejects any positive price; paid needs a positive ``pricePerTask`` or
    ``pricePerMinute``. The billing mode is never derived from the prices. Raises a 400
    BackendError naming the field.
    """
    if billing_mode not in (BILLING_MODE_FREE, BILLING_MODE_PAID):
        raise bad_request(f"Field 'billingMode' must be 'free' or 'paid', got {billing_mode!r}.")
    if pricing is None:
        pricing = {}
    if not isinstance(pricing, Mapping):
        raise bad_request(
            "Field 'pricing' must be an object {pricePerTask?, pricePerMinute?, currency?}."
        )
    unknown = set(pricing) - {"pricePerTask", "pricePerMinute", "currency"}
    if unknown:
        raise bad_request(f"Field 'pricing.{sorted(unknown)[0]}' is not a pricing field.")
    result: dict[str, Any] = {}
    for key in ("pricePerTask", "pricePerMinute"):
        value = pricing.get(key)
        if value is None:
            continue
        # An int is checked apart: math.isfinite cannot convert a huge one to a float.
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise bad_request(f"Field 'pricing.{key}' must be a number.")
        if value < 0:
            raise bad_request(f"Field 'pricing.{key}' must not be negative.")
        if value > 0 and billing_mode == BILLING_MODE_FREE:
            raise bad_request(
                f"Field 'pricing.{key}' is {value} but billingMode is 'free': remove the price "
                "or publish with billingMode 'paid'."
            )
        result[key] = value
    currency = pricing.get("currency")
    if currency is not None:
        if not isinstance(currency, str) or not 1 <= len(currency) <= 8:
            raise bad_request(
                "Field 'pricing.currency' must be a short currency code such as 'USD'."
            )
        result["currency"] = currency
    if billing_mode == BILLING_MODE_PAID and not any(
        result.get(k, 0) > 0 for k in ("pricePerTask", "pricePerMinute")
    ):
        raise bad_request(
            "billingMode 'paid' needs a positive 'pricing.pricePerTask' or 'pricing.pricePerMinute'."
        )
    return result


def check_card(card: object) -> AgentCard:
    """Validate an agent card; a broken rule is a 400 naming ``card.<path>``."""
    try:
        parsed = validate_agent_card(card)
    except AgentCardError as exc:
        where = f"card.{exc.path}" if exc.path else "card"
        raise bad_request(
            f"Invalid agent card: {where}: {exc.reason}", details={"field": where}
        ) from None
    problem = None if parsed.runtime is None else scaling_above_maximum(parsed.runtime)
    if problem is not None:
        raise bad_request(
            f"Invalid agent card: card.runtime.{problem}", details={"field": "card.runtime"}
        )
    return parsed


def _scaling_of(card: AgentCard, base: Scaling) -> Scaling:
    runtime = card.runtime
    if runtime is None:
        return base
    return Scaling(
        concurrency=runtime.concurrency if runtime.concurrency is not None else base.concurrency,
        expected_instances=(
            runtime.expected_instances
            if runtime.expected_instances is not None
            else base.expected_instances
        ),
        max_pending_backlog=(
            runtime.max_pending_backlog
            if runtime.max_pending_backlog is not None
            else base.max_pending_backlog
        ),
        max_running_time_sec=runtime.max_running_time_sec or base.max_running_time_sec,
    )


def _encode_cursor(agent_name: str) -> str:
    return base64.urlsafe_b64encode(agent_name.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = ""
    if not after:
        raise bad_request("Parameter 'cursor' is not a cursor this registry returned.")
    return after


#: Agent records kept in memory by name (emptied on any write).
_RECORD_CACHE_SIZE = 1024


class AgentRegistry:
    """Agent records in the shared database (all calls are short and synchronous)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.ensure_schema(_SCHEMA)
        # Every SendMessage looks its agent up; this class is the table's only writer and
        # empties the cache on each write. Records are shared: treat them as read-only.
        self._by_name: dict[str, AgentRecord] = {}

    def get(self, agent_name: str) -> AgentRecord | None:
        """The record of ``agent_name`` regardless of visibility (None if not registered)."""
        cached = self._by_name.get(agent_name)
        if cached is not None:
            return cached
        row = self._db.query_one("SELECT * FROM agents WHERE agent_name=?", (agent_name,))
        if row is None:
            return None
        if len(self._by_name) >= _RECORD_CACHE_SIZE:
            self._by_name.clear()
        record = self._by_name[agent_name] = _record_of(row)
        return record

    def get_by_id(self, agent_id: str) -> AgentRecord | None:
        row = self._db.query_one("SELECT * FROM agents WHERE agent_id=?", (agent_id,))
        return None if row is None else _record_of(row)

    @staticmethod
    def visible_to(record: AgentRecord, principal: Principal | None) -> bool:
        """Public agents are visible to everyone; private ones only to their organisation."""
        if record.listing == LISTING_PUBLIC:
            return True
        return principal is not None and principal.org_id == record.org_id

    def register_or_update(
        self,
        *,
        card: object,
        billing_mode: str,
        org_id: str,
        owner_user_id: str,
        pricing: object = None,
        listing: str | None = None,
        card_ref: str | None = None,
        card_summary: Any = None,
    ) -> tuple[AgentRecord, bool]:
        """Validate and store an agent; returns ``(record, created)``.

        The name comes from ``card.identity.agentName``. Raises a 400 BackendError for a bad
        card, billing mode, pricing or listing, and a 403 when another organisation owns the
        name. An update keeps the agent id, registration time and forced-offline flag.
        """
        parsed = check_card(card)
        prices = check_pricing(billing_mode, pricing)
        if listing is not None and listing not in (LISTING_PUBLIC, LISTING_PRIVATE):
            raise bad_request(f"Field 'listing' must be 'public' or 'private', got {listing!r}.")
        existing = self.get(parsed.agent_name)
        if existing is not None and existing.org_id != org_id:
            raise forbidden(
                f"Agent name {parsed.agent_name!r} is registered by another organisation: "
                "choose another identity.agentName."
            )
        now = _now_ms()
        record = AgentRecord(
            agent_id=existing.agent_id if existing else f"agt_{uuid.uuid4().hex[:16]}",
            agent_name=parsed.agent_name,
            org_id=org_id,
            owner_user_id=existing.owner_user_id if existing else owner_user_id,
            card=dict(parsed.document),
            billing_mode=BILLING_MODE_PAID
            if billing_mode == BILLING_MODE_PAID
            else BILLING_MODE_FREE,
            listing=listing or (existing.listing if existing else LISTING_PUBLIC),
            pricing=prices,
            scaling=_scaling_of(parsed, existing.scaling if existing else Scaling()),
            card_ref=card_ref,
            card_summary=card_summary,
            registered_at=existing.registered_at if existing else now,
            forced_offline=existing.forced_offline if existing else False,
        )
        try:
            self._write(record, now)
        except sqlite3.IntegrityError:
            # Two registrations of a new name raced; the loser asks again.
            raise BackendError(
                409, CONFLICT, f"Agent {record.agent_name!r} changed meanwhile; retry."
            ) from None
        logger.info(
            "%s agent %s (%s)",
            "registered" if existing is None else "updated",
            record.agent_name,
            billing_mode,
        )
        return record, existing is None

    def _write(self, record: AgentRecord, now: int) -> None:
        self._by_name.clear()
        self._db.execute(
            "INSERT INTO agents (agent_id, agent_name, org_id, owner_user_id, card, card_ref,"
            " card_summary, billing_mode, pricing, listing, scaling, registered_at, updated_at,"
            " forced_offline) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(agent_id) DO UPDATE SET card=excluded.card, card_ref=excluded.card_ref,"
            " card_summary=excluded.card_summary, billing_mode=excluded.billing_mode,"
            " pricing=excluded.pricing, listing=excluded.listing, scaling=excluded.scaling,"
            " updated_at=excluded.updated_at",
            (
                record.agent_id,
                record.agent_name,
                record.org_id,
                record.owner_user_id,
                json.dumps(record.card),
                record.card_ref,
                json.dumps(record.card_summary),
                record.billing_mode,
                json.dumps(dict(record.pricing)),
                record.listing,
                json.dumps(record.scaling.to_wire()),
                record.registered_at,
                now,
                int(record.forced_offline),
            ),
        )

    def update_scaling(self, agent_name: str, **changes: int | None) -> AgentRecord | None:
        """Overwrite scaling fields (snake_case names of :class:`Scaling`) that are not None.

        Connect uses it: the running agent's options win over the published card.
        """
        record = self.get(agent_name)
        if record is None:
            return None
        given = {k: v for k, v in changes.items() if v is not None}
        if not given:
            return record
        scaling = replace(record.scaling, **given)
        self._by_name.clear()
        self._db.execute(
            "UPDATE agents SET scaling=?, updated_at=? WHERE agent_id=?",
            (json.dumps(scaling.to_wire()), _now_ms(), record.agent_id),
        )
        return replace(record, scaling=scaling)

    def set_forced_offline(self, agent_name: str, offline: bool) -> bool:
        """Flag (or unflag) an agent as forced offline by an administrator; False if unknown."""
        self._by_name.clear()
        cursor = self._db.execute(
            "UPDATE agents SET forced_offline=? WHERE agent_name=?", (int(offline), agent_name)
        )
        return cursor.rowcount > 0

    def is_forced_offline(self, agent_name: str) -> bool:
        row = self._db.query_one(
            "SELECT forced_offline FROM agents WHERE agent_name=?", (agent_name,)
        )
        return row is not None and bool(row["forced_offline"])

    def list(
        self,
        principal: Principal | None,
        *,
        tag: str | None = None,
        listing: str | None = None,
        cursor: str | None = None,
        limit: int = MAX_PAGE_SIZE,
    ) -> AgentPage:
        """Agents visible to ``principal``, ordered by name, optionally filtered.

        ``tag`` matches a tag id or name after slug normalisation; ``listing`` is
        ``public`` or ``private``; ``cursor`` is a previous page's ``next``.
        """
        if listing is not None and listing not in (LISTING_PUBLIC, LISTING_PRIVATE):
            raise bad_request(
                f"Parameter 'listing' must be 'public' or 'private', got {listing!r}."
            )
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        wanted_tag = normalize_tag_slug(tag) if tag else None
        after = _decode_cursor(cursor) if cursor else None
        matches = [
            record
            for record in (
                _record_of(r) for r in self._db.query("SELECT * FROM agents ORDER BY agent_name")
            )
            if self.visible_to(record, principal)
            and (listing is None or record.listing == listing)
            and (wanted_tag is None or wanted_tag in record.tag_slugs())
        ]
        remaining = [r for r in matches if after is None or r.agent_name > after]
        page = remaining[:limit]
        more = len(remaining) > limit
        return AgentPage(
            agents=page,
            next=_encode_cursor(page[-1].agent_name) if more and page else None,
            total_count=len(matches),
        )

    def delete(self, agent_name: str) -> bool:
        """Remove an agent; False if it did not exist."""
        self._by_name.clear()
        cursor = self._db.execute("DELETE FROM agents WHERE agent_name=?", (agent_name,))
        return cursor.rowcount > 0


def _record_of(row: sqlite3.Row) -> AgentRecord:
    billing_mode: BillingMode = (
        BILLING_MODE_PAID if row["billing_mode"] == BILLING_MODE_PAID else BILLING_MODE_FREE
    )
    return AgentRecord(
        agent_id=str(row["agent_id"]),
        agent_name=str(row["agent_name"]),
        org_id=str(row["org_id"]),
        owner_user_id=str(row["owner_user_id"]),
        card=json.loads(row["card"]),
        billing_mode=billing_mode,
        listing=str(row["listing"]),
        pricing=json.loads(row["pricing"]),
        scaling=Scaling.from_wire(json.loads(row["scaling"])),
        card_ref=row["card_ref"],
        card_summary=None if row["card_summary"] is None else json.loads(row["card_summary"]),
        registered_at=int(row["registered_at"]),
        forced_offline=bool(row["forced_offline"]),
    )
