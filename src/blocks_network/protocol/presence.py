"""Presence state of an agent instance (§9.2), set on its control channel.

The backend reads it to pick an instance with spare capacity and a compatible protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._fields import as_object, req_int, req_list, req_str
from .constants import PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS
from .errors import ProtocolError

__all__ = ["InstancePresence"]


@dataclass(frozen=True)
class InstancePresence:
    """``{instanceId, activeTasks, concurrency, startedAt, activeStreams,
    preferredProtocolVersion, protocolVersions}``; ``concurrency`` 0 means unlimited."""

    instance_id: str
    active_tasks: int
    concurrency: int
    started_at: int
    active_streams: int = 0
    preferred_protocol_version: str = PROTOCOL_VERSION
    protocol_versions: tuple[str, ...] = SUPPORTED_PROTOCOL_VERSIONS

    @classmethod
    def from_wire(cls, value: object) -> InstancePresence:
        """Parse a presence state; raises ProtocolError on a bad shape."""
        w = "presence state"
        obj = as_object(value, w)
        versions = req_list(obj, "protocolVersions", w)
        if not all(isinstance(v, str) for v in versions):
            raise ProtocolError(f"{w}.protocolVersions: every entry must be a string")
        return cls(
            instance_id=req_str(obj, "instanceId", w),
            active_tasks=req_int(obj, "activeTasks", w, minimum=0),
            concurrency=req_int(obj, "concurrency", w, minimum=0),
            started_at=req_int(obj, "startedAt", w, minimum=0),
            active_streams=req_int(obj, "activeStreams", w, minimum=0),
            preferred_protocol_version=req_str(obj, "preferredProtocolVersion", w),
            protocol_versions=tuple(versions),
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        return {
            "instanceId": self.instance_id,
            "activeTasks": self.active_tasks,
            "concurrency": self.concurrency,
            "startedAt": self.started_at,
            "activeStreams": self.active_streams,
            "preferredProtocolVersion": self.preferred_protocol_version,
            "protocolVersions": list(self.protocol_versions),
        }

    @property
    def has_capacity(self) -> bool:
        """True if the instance can take another task (unlimited when concurrency is 0)."""
        return self.concurrency == 0 or self.active_tasks < self.concurrency

    def supports(self, protocol_version: str) -> bool:
        """True if the instance advertises ``protocol_version``."""
        return protocol_version in self.protocol_versions
