"""Where the SDK connects: the CDM document, ``BLOCKS_*`` variables and explicit options (§1).

Resolution order for every value is explicit option > ``BLOCKS_*`` environment variable >
CDM document. The environment is read in one place, :func:`read_env`, which takes the mapping
as an argument so tests and embedders never have to patch ``os.environ``.

Used by the consumer (``TaskClient``) and by the agent runtime:

- :func:`read_env` → :class:`EnvSettings`
- :func:`resolve_cdm_url`, :func:`load_cdm_config` (GET, 10 s timeout, no retry)
- :func:`keyset_for` (billing mode or environment name → keyset)
- :func:`realtime_endpoint` (the document's ``realtime`` block, else PubNub's origin)
- :func:`resolve_client_config` → :class:`ClientConfig` (the consumer's whole resolution)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from blocks_network.errors import ConfigError, NetworkError
from blocks_network.protocol.cdm import CdmConfig, Keyset
from blocks_network.protocol.cdm import resolve_cdm_url as _resolve_cdm_url
from blocks_network.protocol.constants import (
    ARTIFACT_INLINE_LIMIT_BYTES,
    BILLING_MODE_ENVIRONMENTS,
    BILLING_MODES,
    CDM_TIMEOUT_S,
    ENV_API_KEY,
    ENV_ARTIFACT_INLINE_LIMIT_BYTES,
    ENV_BACKEND_URL,
    ENV_CDM_URL,
    ENV_PUBLISH_KEY,
    ENV_SUBSCRIBE_KEY,
    ENVIRONMENT_NETWORK,
    ENVIRONMENT_PLAYGROUND,
    ENVIRONMENTS,
    BillingMode,
    Environment,
)
from blocks_network.protocol.errors import ProtocolError
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import DEFAULT_ORIGIN, RealtimeEndpoint

__all__ = [
    "ClientConfig",
    "EnvSettings",
    "environment_for",
    "keyset_for",
    "load_cdm_config",
    "read_env",
    "realtime_endpoint",
    "resolve_cdm_url",
    "resolve_client_config",
    "validate_billing_mode",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvSettings:
    """The ``BLOCKS_*`` (and artifact-size) environment variables; empty values count as unset."""

    cdm_url: str | None = None
    api_key: str | None = None
    subscribe_key: str | None = None
    publish_key: str | None = None
    backend_url: str | None = None
    inline_limit_bytes: int = ARTIFACT_INLINE_LIMIT_BYTES


def read_env(environ: Mapping[str, str]) -> EnvSettings:
    """Read the SDK's environment variables from ``environ`` (pass ``os.environ`` in apps).

    Raises ConfigError when ``ARTIFACT_INLINE_LIMIT_BYTES`` is set but not a non-negative
    integer.
    """

    def get(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    limit = ARTIFACT_INLINE_LIMIT_BYTES
    raw_limit = get(ENV_ARTIFACT_INLINE_LIMIT_BYTES)
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = -1
        if limit < 0:
            raise ConfigError(
                f"{ENV_ARTIFACT_INLINE_LIMIT_BYTES}={raw_limit!r} is not a byte count; set it to "
                f"a non-negative integer (default {ARTIFACT_INLINE_LIMIT_BYTES}) or unset it"
            )
    return EnvSettings(
        cdm_url=get(ENV_CDM_URL),
        api_key=get(ENV_API_KEY),
        subscribe_key=get(ENV_SUBSCRIBE_KEY),
        publish_key=get(ENV_PUBLISH_KEY),
        backend_url=get(ENV_BACKEND_URL),
        inline_limit_bytes=limit,
    )


def resolve_cdm_url(explicit: str | None, env: Mapping[str, str] | EnvSettings) -> str:
    """The CDM URL: ``explicit`` → non-empty ``BLOCKS_CDM_URL`` → the default URL."""
    if isinstance(env, EnvSettings):
        return explicit or env.cdm_url or _resolve_cdm_url(None, {})
    return _resolve_cdm_url(explicit, env)


def load_cdm_config(url: str, http: HttpClient, *, timeout: float = CDM_TIMEOUT_S) -> CdmConfig:
    """GET and parse the CDM document at ``url`` (no auth headers, no retry).

    Raises NetworkError when the URL cannot be reached and ConfigError when it answers an
    error status, something other than JSON, or a document without both keysets (the message
    then includes the spec's ``CDM config missing … keys``).
    """
    hint = "is `blocks devnet` running? set BLOCKS_CDM_URL to its config URL"
    try:
        response = http.request("GET", url, timeout=timeout, retry_transient=False)
    except NetworkError as exc:
        raise NetworkError(
            f"could not fetch the Blocks config from {url}: {exc.__cause__ or exc}; {hint}"
        ) from exc
    if not 200 <= response.status < 300:
        raise ConfigError(
            f"the Blocks config URL {url} answered HTTP {response.status}; check "
            "BLOCKS_CDM_URL (on the local network it ends in /config.json)"
        )
    document = response.json()
    if document is None:
        raise ConfigError(f"the Blocks config at {url} is not JSON; check BLOCKS_CDM_URL")
    try:
        return CdmConfig.from_wire(document)
    except ProtocolError as exc:
        raise ConfigError(f"{exc} (from {url}); check BLOCKS_CDM_URL") from exc


def validate_billing_mode(billing_mode: object) -> BillingMode:
    """Return ``billing_mode`` if it is exactly ``"free"`` or ``"paid"``, else raise ConfigError."""
    if billing_mode == "free":
        return "free"
    if billing_mode == "paid":
        return "paid"
    raise ConfigError(
        f"billing_mode must be 'free' (playground keyset) or 'paid' (network keyset), "
        f"got {billing_mode!r}; use the billing mode the agent was registered with"
    )


def environment_for(mode: str) -> Environment:
    """``free``/``playground`` → playground, ``paid``/``network`` → network; else ConfigError."""
    if mode in BILLING_MODES:
        mode = BILLING_MODE_ENVIRONMENTS[mode]
    if mode == ENVIRONMENT_PLAYGROUND:
        return ENVIRONMENT_PLAYGROUND
    if mode == ENVIRONMENT_NETWORK:
        return ENVIRONMENT_NETWORK
    raise ConfigError(
        f"expected a billing mode {BILLING_MODES} or an environment {ENVIRONMENTS}, got {mode!r}"
    )


def keyset_for(cdm: CdmConfig, mode: str) -> Keyset:
    """The keyset of a billing mode (``free``/``paid``) or environment (``playground``/``network``)."""
    return cdm.keyset(environment_for(mode))


def realtime_endpoint(cdm: CdmConfig | None) -> RealtimeEndpoint:
    """Where PubNub requests go: the document's ``realtime`` block, else PubNub's origin."""
    if cdm is None or cdm.realtime is None:
        return RealtimeEndpoint(DEFAULT_ORIGIN, True)
    return RealtimeEndpoint(cdm.realtime.origin, cdm.realtime.ssl)


@dataclass(frozen=True)
class ClientConfig:
    """Everything a consumer ``TaskClient`` needs to reach the network, fully resolved."""

    billing_mode: BillingMode
    environment: Environment
    subscribe_key: str
    publish_key: str | None
    base_url: str
    realtime: RealtimeEndpoint
    cdm_url: str
    cdm: CdmConfig | None = None
    inline_limit_bytes: int = ARTIFACT_INLINE_LIMIT_BYTES


def resolve_client_config(
    billing_mode: object,
    *,
    http: HttpClient,
    env: EnvSettings,
    cdm_url: str | None = None,
    subscribe_key: str | None = None,
    publish_key: str | None = None,
    base_url: str | None = None,
) -> ClientConfig:
    """Resolve a consumer's keys and backend URL (explicit > env > CDM); always fetches the CDM.

    Raises ConfigError for a bad billing mode or when no subscribe key or base URL can be
    found, NetworkError when the CDM cannot be fetched.
    """
    mode = validate_billing_mode(billing_mode)
    environment = environment_for(mode)
    url = resolve_cdm_url(cdm_url, env)
    cdm = load_cdm_config(url, http)
    keyset = cdm.keyset(environment)
    sub = subscribe_key or env.subscribe_key or keyset.subscribe_key
    pub = publish_key or env.publish_key or keyset.publish_key
    base = (base_url or env.backend_url or cdm.api_base_url or "").rstrip("/")
    if not sub:
        raise ConfigError(
            f"no subscribe key for billing_mode={mode!r}: pass subscribe_key=..., set "
            f"{ENV_SUBSCRIBE_KEY}, or fix the CDM document at {url}"
        )
    if not base:
        raise ConfigError(
            f"no backend URL: pass base_url=..., set {ENV_BACKEND_URL}, or use a CDM "
            f"document with api.baseUrl (fetched from {url})"
        )
    return ClientConfig(
        billing_mode=mode,
        environment=environment,
        subscribe_key=sub,
        publish_key=pub or None,
        base_url=base,
        realtime=realtime_endpoint(cdm),
        cdm_url=url,
        cdm=cdm,
        inline_limit_bytes=env.inline_limit_bytes,
    )
