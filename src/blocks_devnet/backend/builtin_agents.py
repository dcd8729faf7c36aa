"""The built-in agents every local network registers: ``echo`` and ``adder`` (protocol §9.7)."""

from __future__ import annotations

import logging
from typing import Any

from blocks_devnet.backend.errors import BackendError
from blocks_devnet.backend.registry import AgentRegistry
from blocks_network.protocol.constants import BILLING_MODE_FREE, LISTING_PUBLIC

logger = logging.getLogger(__name__)


def _builtin_card(
    name: str,
    display: str,
    description: str,
    input_description: str,
    extra_inputs: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    return {
        "identity": {
            "agentName": name,
            "displayName": display,
            "description": description,
            "version": "1.0.0",
            "provider": {"organization": "Blocks local network"},
        },
        "capabilities": {"taskKinds": ["request"]},
        "io": {
            "inputs": [
                {
                    "id": "text",
                    "description": input_description,
                    "contentType": "text/plain",
                    "required": not extra_inputs,
                },
                *extra_inputs,
            ],
            "outputs": [{"id": "result", "contentType": "text/plain", "guaranteed": True}],
        },
        "tags": [{"id": name, "name": display}],
    }


#: The built-in agents of protocol.md §9.7, registered free and public on every local network.
BUILTIN_AGENT_CARDS: tuple[dict[str, Any], ...] = (
    _builtin_card(
        "echo",
        "Echo",
        "Answers with the text it was sent.",
        "Text to echo back.",
        # The seed's part-helper sample sends files with the default part id "file".
        extra_inputs=(
            {
                "id": "file",
                "description": "Any file; echo answers with the parts it received.",
                "contentType": "application/octet-stream",
                "required": False,
            },
        ),
    ),
    _builtin_card(
        "adder",
        "Adder",
        'Adds two numbers given as JSON text such as {"a": 1, "b": 2}.',
        "JSON text with numeric a and b.",
    ),
)


def ensure_builtin_agents(registry: AgentRegistry, org_id: str, owner_user_id: str) -> None:
    """Register (or refresh) the built-in agents as free, public agents of ``org_id``."""
    for card in BUILTIN_AGENT_CARDS:
        try:
            registry.register_or_update(
                card=card,
                billing_mode=BILLING_MODE_FREE,
                org_id=org_id,
                owner_user_id=owner_user_id,
                listing=LISTING_PUBLIC,
            )
        except BackendError as exc:
            # An organisation took the name while built-ins were switched off: keep theirs.
            logger.warning(
                "built-in agent %s not registered: %s", card["identity"]["agentName"], exc.message
            )
