"""ArtifactRef (§7): an inline (base64) or PubNub-file reference to bytes.

Inline refs carry their data; file refs name a PubNub file (``channel`` + ``fileId``) that the
reader downloads with a token granting read on that channel.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

from ._fields import as_object, opt_str, put, req_int, req_str
from .errors import ProtocolError

__all__ = [
    "DEFAULT_MIME_TYPE",
    "ArtifactRef",
    "FileArtifactRef",
    "InlineArtifactRef",
    "parse_artifact_ref",
]

DEFAULT_MIME_TYPE: Final = "application/octet-stream"


@dataclass(frozen=True)
class InlineArtifactRef:
    """``{"kind":"inline", mimeType, size, data, hash?, fileName?}``; ``data`` is base64."""

    KIND: ClassVar[str] = "inline"

    data: str
    size: int
    mime_type: str = DEFAULT_MIME_TYPE
    file_name: str | None = None
    hash: str | None = None

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        mime_type: str | None = None,
        file_name: str | None = None,
        include_hash: bool = False,
    ) -> InlineArtifactRef:
        """Build an inline ref for ``data`` (size and base64 computed; ``sha256:`` on request)."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}" if include_hash else None
        return cls(
            data=base64.b64encode(data).decode("ascii"),
            size=len(data),
            mime_type=mime_type or DEFAULT_MIME_TYPE,
            file_name=file_name,
            hash=digest,
        )

    def decode(self) -> bytes:
        """Return the raw bytes; raises ProtocolError if ``data`` is not valid base64."""
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError("artifactRef.data: not valid standard base64") from exc

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {
            "kind": self.KIND,
            "mimeType": self.mime_type,
            "size": self.size,
            "data": self.data,
        }
        put(wire, "fileName", self.file_name)
        put(wire, "hash", self.hash)
        return wire


@dataclass(frozen=True)
class FileArtifactRef:
    """``{"kind":"file", channel, fileId, mimeType, size, fileName?, hash?, expiresAt?}``."""

    KIND: ClassVar[str] = "file"

    channel: str
    file_id: str
    size: int
    mime_type: str = DEFAULT_MIME_TYPE
    file_name: str | None = None
    hash: str | None = None
    expires_at: str | int | None = None

    def to_wire(self) -> dict[str, Any]:
        """Return the wire object."""
        wire: dict[str, Any] = {
            "kind": self.KIND,
            "mimeType": self.mime_type,
            "size": self.size,
            "channel": self.channel,
            "fileId": self.file_id,
        }
        put(wire, "fileName", self.file_name)
        put(wire, "hash", self.hash)
        put(wire, "expiresAt", self.expires_at)
        return wire


ArtifactRef: TypeAlias = InlineArtifactRef | FileArtifactRef


def parse_artifact_ref(value: object, where: str = "artifactRef") -> ArtifactRef:
    """Parse a wire ArtifactRef; raises ProtocolError on a bad shape or unknown ``kind``.

    ``mimeType`` defaults to ``application/octet-stream``; ``expiresAt`` may be a string or an
    integer; unknown extra keys (e.g. the removed ``fileUrl``) are ignored.
    """
    obj = as_object(value, where)
    kind = req_str(obj, "kind", where)
    mime_type = opt_str(obj, "mimeType", where) or DEFAULT_MIME_TYPE
    size = req_int(obj, "size", where, minimum=0)
    file_name = opt_str(obj, "fileName", where)
    digest = opt_str(obj, "hash", where)
    if kind == InlineArtifactRef.KIND:
        return InlineArtifactRef(
            data=req_str(obj, "data", where, non_empty=False),
            size=size,
            mime_type=mime_type,
            file_name=file_name,
            hash=digest,
        )
    if kind == FileArtifactRef.KIND:
        expires_at = obj.get("expiresAt")
        if expires_at is not None and (
            isinstance(expires_at, bool) or not isinstance(expires_at, (str, int))
        ):
            raise ProtocolError(f"{where}.expiresAt: expected a string or an integer")
        return FileArtifactRef(
            channel=req_str(obj, "channel", where),
            file_id=req_str(obj, "fileId", where),
            size=size,
            mime_type=mime_type,
            file_name=file_name,
            hash=digest,
            expires_at=expires_at,
        )
    raise ProtocolError(f"{where}.kind: must be 'inline' or 'file', got {kind!r}")
