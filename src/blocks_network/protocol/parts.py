"""RequestPart (§3.1, §4.3): one part of a task's request, as sent and as delivered.

A part carries text or a file reference; any other keys travel untouched in ``extra`` so
agents can receive structured fields (e.g. ``{"a": 1, "b": 2}``) the protocol does not name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._fields import as_object, opt_str, put, type_name
from .artifacts import ArtifactRef, parse_artifact_ref
from .errors import ProtocolError

__all__ = ["RequestPart", "parse_request_parts"]

_KNOWN_KEYS: Final = frozenset({"partId", "text", "contentType", "artifactRef"})


@dataclass(frozen=True)
class RequestPart:
    """``{partId?, text?, contentType?, artifactRef?, ...extra}``.

    ``extra`` holds every other wire key; on output the named fields win over ``extra``.
    """

    part_id: str | None = None
    text: str | None = None
    content_type: str | None = None
    artifact_ref: ArtifactRef | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, value: object, where: str = "requestPart") -> RequestPart:
        """Parse a wire part; raises ProtocolError on ill-typed named fields."""
        obj = as_object(value, where)
        ref_value = obj.get("artifactRef")
        return cls(
            part_id=opt_str(obj, "partId", where),
            text=opt_str(obj, "text", where),
            content_type=opt_str(obj, "contentType", where),
            artifact_ref=(
                None if ref_value is None else parse_artifact_ref(ref_value, f"{where}.artifactRef")
            ),
            extra={k: v for k, v in obj.items() if k not in _KNOWN_KEYS},
        )

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object (absent optional fields omitted)."""
        wire: dict[str, Any] = dict(self.extra)
        put(wire, "partId", self.part_id)
        put(wire, "text", self.text)
        put(wire, "contentType", self.content_type)
        if self.artifact_ref is not None:
            wire["artifactRef"] = self.artifact_ref.to_wire()
        return wire


def parse_request_parts(value: object, where: str) -> tuple[RequestPart, ...]:
    """Parse a wire array of parts; raises ProtocolError naming the bad index."""
    if not isinstance(value, (list, tuple)):
        raise ProtocolError(f"{where}: expected an array, got {type_name(value)}")
    return tuple(RequestPart.from_wire(p, f"{where}[{i}]") for i, p in enumerate(value))
