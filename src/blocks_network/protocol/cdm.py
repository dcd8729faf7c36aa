"""The CDM config document (§1): keysets per environment, backend base URL and, on the local
network, the realtime origin.

The document is fetched by the SDK with a plain GET; this module only parses and builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._fields import opt_bool, opt_object, opt_str, put, req_str, type_name
from .constants import (
    BILLING_MODE_ENVIRONMENTS,
    DEFAULT_CDM_URL,
    ENV_CDM_URL,
    ENVIRONMENT_NETWORK,
    ENVIRONMENT_PLAYGROUND,
    Environment,
)
from .errors import ProtocolError

__all__ = [
    "CdmConfig",
    "Keyset",
    "RealtimeOrigin",
    "environment_for_billing_mode",
    "resolve_cdm_url",
]


def environment_for_billing_mode(billing_mode: object) -> Environment:
    """``"free"`` → playground, ``"paid"`` → network; anything else raises ProtocolError."""
    if isinstance(billing_mode, str) and billing_mode in BILLING_MODE_ENVIRONMENTS:
        env = BILLING_MODE_ENVIRONMENTS[billing_mode]
        return ENVIRONMENT_NETWORK if env == ENVIRONMENT_NETWORK else ENVIRONMENT_PLAYGROUND
    raise ProtocolError(f"billing mode must be 'free' or 'paid', got {billing_mode!r}")


def resolve_cdm_url(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The CDM URL to fetch: ``explicit`` → non-empty ``BLOCKS_CDM_URL`` → the default."""
    if explicit:
        return explicit
    return environ.get(ENV_CDM_URL) or DEFAULT_CDM_URL


@dataclass(frozen=True)
class Keyset:
    """A PubNub publish/subscribe key pair."""

    publish_key: str
    subscribe_key: str

    def to_wire(self) -> dict[str, str]:
        """Return ``{publishKey, subscribeKey}``."""
        return {"publishKey": self.publish_key, "subscribeKey": self.subscribe_key}


@dataclass(frozen=True)
class RealtimeOrigin:
    """Where the realtime (PubNub-compatible) API is served: ``HOST:PORT`` and TLS or not.

    An extension of our local network; the hosted CDM document has no ``realtime`` member and
    clients then use PubNub's default origin.
    """

    origin: str
    ssl: bool = True

    def to_wire(self) -> dict[str, Any]:
        """Return ``{origin, ssl}``."""
        return {"origin": self.origin, "ssl": self.ssl}


def _keyset(obj: Mapping[str, Any], env: str) -> Keyset:
    section = obj.get(env)
    if isinstance(section, Mapping):
        pub, sub = section.get("publishKey"), section.get("subscribeKey")
        if isinstance(pub, str) and pub and isinstance(sub, str) and sub:
            return Keyset(publish_key=pub, subscribe_key=sub)
    # Exact text required by the spec (callers and tests match on it).
    raise ProtocolError(f"CDM config missing {env} keys")


@dataclass(frozen=True)
class CdmConfig:
    """``{playground:{publishKey,subscribeKey}, network:{...}, api?:{baseUrl?,clientId?},
    realtime?:{origin, ssl?}}``."""

    playground: Keyset
    network: Keyset
    api_base_url: str = ""
    api_client_id: str | None = None
    realtime: RealtimeOrigin | None = None

    @classmethod
    def from_wire(cls, value: object) -> CdmConfig:
        """Parse the document.

        Raises ProtocolError (a ValueError) with exactly ``CDM config missing playground keys``
        / ``CDM config missing network keys`` when a keyset is absent or has an empty key, and a
        message naming the field for other shape errors.
        """
        if not isinstance(value, Mapping):
            raise ProtocolError(f"CDM config must be a JSON object, got {type_name(value)}")
        playground = _keyset(value, ENVIRONMENT_PLAYGROUND)
        network = _keyset(value, ENVIRONMENT_NETWORK)
        api = opt_object(value, "api", "CDM config") or {}
        base_url = opt_str(api, "baseUrl", "CDM config.api") or ""
        realtime_obj = opt_object(value, "realtime", "CDM config")
        realtime = None
        if realtime_obj is not None:
            w = "CDM config.realtime"
            realtime = RealtimeOrigin(
                origin=req_str(realtime_obj, "origin", w),
                ssl=opt_bool(realtime_obj, "ssl", w, True),
            )
        return cls(
            playground=playground,
            network=network,
            api_base_url=base_url.rstrip("/"),
            api_client_id=opt_str(api, "clientId", "CDM config.api"),
            realtime=realtime,
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the document (``realtime`` only when set)."""
        api: dict[str, Any] = {"baseUrl": self.api_base_url}
        put(api, "clientId", self.api_client_id)
        wire: dict[str, Any] = {
            ENVIRONMENT_PLAYGROUND: self.playground.to_wire(),
            ENVIRONMENT_NETWORK: self.network.to_wire(),
            "api": api,
        }
        if self.realtime is not None:
            wire["realtime"] = self.realtime.to_wire()
        return wire

    def keyset(self, environment: Environment) -> Keyset:
        """The keyset of ``environment``; raises ProtocolError for an unknown one."""
        if environment == ENVIRONMENT_PLAYGROUND:
            return self.playground
        if environment == ENVIRONMENT_NETWORK:
            return self.network
        raise ProtocolError(f"environment must be 'playground' or 'network', got {environment!r}")

    def keyset_for_billing_mode(self, billing_mode: str) -> Keyset:
        """The keyset a billing mode uses (free → playground, paid → network)."""
        return self.keyset(environment_for_billing_mode(billing_mode))
