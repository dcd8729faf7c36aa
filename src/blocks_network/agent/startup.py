"""Start-up steps of an instance before it subscribes (protocol §9.1): card, network, registry.

Each step raises a typed error whose message says what to do. The registry lookup and the
connect cooperate with the local network's auto-registration: an agent that is not in the
registry yet is connected as ``free``; a network that registers agents on connect (``blocks
devnet``) accepts it, while one that does not answers 404 and the error says to run
``blocks publish`` first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blocks_network.auth.agent_auth import AgentAuth, ConnectResult
from blocks_network.config import EnvSettings, load_cdm_config, realtime_endpoint, resolve_cdm_url
from blocks_network.consumer.registry_client import RegistryClient
from blocks_network.errors import ApiKeyInvalidError, BackendError, ConfigError
from blocks_network.protocol.agent_card import AgentCard, validate_agent_card
from blocks_network.protocol.cdm import CdmConfig, Keyset
from blocks_network.protocol.constants import (
    BILLING_MODES,
    ENV_API_KEY,
    ENVIRONMENTS,
    Environment,
)
from blocks_network.protocol.errors import AgentCardError
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from blocks_network.types import AgentInstanceOptions

__all__ = [
    "API_KEY_MISSING",
    "NetworkSettings",
    "RegistryRecord",
    "build_card",
    "check_card",
    "connect_agent",
    "lookup_registry",
    "require_api_key",
    "resolve_network",
    "scaling_limits",
]

logger = logging.getLogger(__name__)

API_KEY_MISSING = (
    f"{ENV_API_KEY} is not set: run `blocks devnet` and export the {ENV_API_KEY} it prints "
    "(or create one with `blocks devnet keys create --user NAME`)"
)


def require_api_key(env: EnvSettings) -> str:
    """The API key, or ConfigError saying how to get one."""
    if not env.api_key:
        raise ConfigError(API_KEY_MISSING)
    return env.api_key


def build_card(options: AgentInstanceOptions) -> dict[str, Any]:
    """``options.card``, or a minimal valid card built from the name, description and tags."""
    if options.card is not None:
        return options.card
    card: dict[str, Any] = {
        "identity": {
            "agentName": options.agent_name,
            "displayName": options.agent_name,
            "description": options.description or f"The {options.agent_name} agent.",
            "version": "0.0.0",
            "provider": {"organization": "local"},
        },
        "capabilities": {"taskKinds": ["request", "pipe"]},
    }
    if options.tags:
        card["tags"] = options.tags
    return card


def check_card(card: Mapping[str, Any], agent_name: str) -> AgentCard:
    """Validate the card; its ``identity.agentName`` must be the instance's agent name."""
    try:
        validated = validate_agent_card(card)
    except AgentCardError as exc:
        raise ConfigError(f"agent card: {exc}") from exc
    if validated.agent_name != agent_name:
        raise ConfigError(
            f"agent card: identity.agentName is {validated.agent_name!r} but agent_name is "
            f"{agent_name!r}; make them the same"
        )
    return validated


def scaling_limits(options: AgentInstanceOptions, card: AgentCard) -> tuple[int | None, int | None]:
    """``(maxRunningTimeSec, maxPendingBacklog)`` to announce: options win over the card."""
    runtime = card.runtime
    max_running = options.max_running_time_sec
    if runtime is not None and runtime.max_running_time_sec is not None:
        if max_running is not None and max_running != runtime.max_running_time_sec:
            logger.info(
                "maxRunningTimeSec %s from the options overrides %s from the card",
                max_running,
                runtime.max_running_time_sec,
            )
        max_running = max_running or runtime.max_running_time_sec
    backlog = options.max_pending_backlog
    if backlog is None and runtime is not None:
        backlog = runtime.max_pending_backlog
    return max_running, backlog


@dataclass(frozen=True)
class NetworkSettings:
    """Where the instance connects: backend, realtime origin and keysets per environment."""

    base_url: str
    endpoint: RealtimeEndpoint
    keysets: Mapping[Environment, Keyset]
    cdm: CdmConfig | None = None
    cdm_url: str | None = None

    def keyset(self, environment: Environment | None) -> Keyset:
        return self.keysets[environment or "playground"]


def resolve_network(
    options: AgentInstanceOptions, env: EnvSettings, http: HttpClient
) -> NetworkSettings:
    """Resolve the CDM (skipped with an external ``pubnub`` client) and the backend URL.

    Raises NetworkError when the CDM cannot be fetched and ConfigError when no backend URL
    is known.
    """
    if options.pubnub is not None:
        config = options.pubnub.config
        keyset = Keyset(publish_key=config.publish_key or "", subscribe_key=config.subscribe_key)
        endpoint = RealtimeEndpoint(config.origin, bool(config.ssl))
        base_url = (options.base_url or env.backend_url or "").rstrip("/")
        if not base_url:
            raise ConfigError(
                "an agent started with its own pubnub client needs base_url=... (the Blocks "
                "backend URL) to register and receive its control channel"
            )
        return NetworkSettings(base_url, endpoint, {e: keyset for e in ENVIRONMENTS})
    url = resolve_cdm_url(options.cdm_url, env)
    cdm = load_cdm_config(url, http)
    base_url = (options.base_url or env.backend_url or cdm.api_base_url).rstrip("/")
    if not base_url:
        raise ConfigError(
            f"the Blocks config at {url} has no api.baseUrl; pass base_url=... or set "
            "BLOCKS_BACKEND_URL"
        )
    keysets = {e: cdm.keyset(e) for e in ENVIRONMENTS}
    return NetworkSettings(base_url, realtime_endpoint(cdm), keysets, cdm, url)


@dataclass(frozen=True)
class RegistryRecord:
    """The fields of the agent's registry record the runtime uses."""

    billing_mode: str
    listing: str | None


def lookup_registry(
    http: HttpClient, base_url: str, api_key: str, agent_name: str
) -> RegistryRecord | None:
    """GET the agent's registry record (§5.7); None when it is not registered (404).

    Raises ConfigError when the registry refuses or the record has no valid billing mode,
    NetworkError when the backend is unreachable.
    """
    try:
        agent = RegistryClient.with_api_key(base_url, api_key, http=http).get(agent_name)
    except ApiKeyInvalidError:
        raise
    except BackendError as exc:
        raise ConfigError(str(exc)) from exc
    if agent is None:
        return None
    mode = agent.get("billingMode")
    if mode not in BILLING_MODES:
        raise ConfigError(
            f"agent {agent_name!r} is missing a valid billing_mode in the registry (got "
            f"{mode!r}); republish it with billingMode 'free' or 'paid'"
        )
    listing = agent.get("listing")
    return RegistryRecord(str(mode), listing if isinstance(listing, str) else None)


def connect_agent(auth: AgentAuth, agent_name: str, *, unregistered: bool) -> ConnectResult:
    """Connect (§5.1) and check the answer has a control channel.

    ``unregistered`` says the registry lookup found nothing: a 404 then means this network
    does not register agents on connect, and the error says to publish first. Raises
    ConfigError, BackendError, ApiKeyInvalidError, AgentForcedOfflineError or NetworkError.
    """
    try:
        result = auth.connect()
    except BackendError as exc:
        if unregistered and exc.status == 404:
            raise ConfigError(
                f"agent {agent_name!r} not found in registry and this network does not register "
                "agents on connect. Run 'blocks publish' first (with its agent-card.json)."
            ) from exc
        raise
    if not result.control_channel:
        raise BackendError(
            "connect answered without a controlChannel; this backend is not a Blocks "
            "backend (check BLOCKS_CDM_URL)"
        )
    if unregistered:
        logger.info("agent %s was registered by the network on first connect", agent_name)
    return result
