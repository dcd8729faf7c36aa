"""Reading artifacts (§7): inline refs decode locally, file refs download via PubNub Files.

``download_artifact(ref, pubnub)`` is the standalone form; ``pubnub`` must hold a token that
grants read on ``ref.channel`` (a task read token does). ``safe_artifact_path`` keeps
``save_artifacts`` inside its directory whatever file name an agent chose.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pubnub.exceptions import PubNubException
from pubnub.pubnub import PubNub

from blocks_network.errors import ArtifactError
from blocks_network.protocol.artifacts import (
    ArtifactRef,
    FileArtifactRef,
    InlineArtifactRef,
    parse_artifact_ref,
)
from blocks_network.protocol.errors import ProtocolError

__all__ = [
    "ArtifactRef",
    "DownloadedArtifact",
    "coerce_artifact_ref",
    "download_artifact",
    "safe_artifact_path",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadedArtifact:
    """An artifact's bytes with its MIME type and (if the agent named it) file name."""

    data: bytes
    mime_type: str
    file_name: str | None = None


def coerce_artifact_ref(ref: ArtifactRef | Mapping[str, Any]) -> ArtifactRef:
    """Accept a parsed ref or its wire dict; raises ArtifactError for anything else."""
    if isinstance(ref, (InlineArtifactRef, FileArtifactRef)):
        return ref
    try:
        return parse_artifact_ref(ref)
    except ProtocolError as exc:
        raise ArtifactError(f"not an artifact reference: {exc}") from exc


def download_artifact(
    ref: ArtifactRef | Mapping[str, Any], pubnub: PubNub | None
) -> DownloadedArtifact:
    """Return an artifact's bytes (blocking for file refs).

    Inline refs need no client. File refs are fetched with ``pubnub.download_file`` and need
    a client whose token grants read on the ref's channel. Raises ArtifactError when the
    data is invalid, the client is missing, or the download fails.
    """
    parsed = coerce_artifact_ref(ref)
    if isinstance(parsed, InlineArtifactRef):
        try:
            data = parsed.decode()
        except ProtocolError as exc:
            raise ArtifactError(f"inline artifact is corrupt: {exc}") from exc
        return DownloadedArtifact(data, parsed.mime_type, parsed.file_name)
    if not parsed.file_name:
        raise ArtifactError(
            f"file artifact {parsed.file_id} on {parsed.channel} has no fileName and cannot "
            "be downloaded"
        )
    if pubnub is None:
        raise ArtifactError(
            "downloading a file artifact needs a PubNub client with a read token for "
            f"{parsed.channel}; use session.download_artifact(ref) instead"
        )
    try:
        envelope = (
            pubnub.download_file()
            .channel(parsed.channel)
            .file_id(parsed.file_id)
            .file_name(parsed.file_name)
            .sync()
        )
    except PubNubException as exc:
        status = exc.get_status_code() if hasattr(exc, "get_status_code") else None
        hint = (
            "the read token expired or does not cover that channel"
            if status == 403
            else "the file may have expired or the network is unreachable"
        )
        raise ArtifactError(
            f"could not download artifact {parsed.file_name!r} ({parsed.file_id}) from "
            f"{parsed.channel}: {exc}; {hint}"
        ) from exc
    data = envelope.result.data
    if not isinstance(data, (bytes, bytearray)):
        raise ArtifactError(f"download of {parsed.file_name!r} returned no bytes")
    return DownloadedArtifact(bytes(data), parsed.mime_type, parsed.file_name)


def safe_artifact_path(directory: Path, file_name: str | None, index: int) -> Path:
    """Where ``save_artifacts`` writes artifact ``index``: only the name's last component.

    Raises ArtifactError if the result would still leave ``directory``.
    """
    name = (file_name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", ".."):
        name = f"artifact-{index}"
    root = directory.resolve()
    target = (root / name).resolve()
    if target.parent != root:
        raise ArtifactError(
            f"artifact file name {file_name!r} resolves outside {root}; refusing to write it"
        )
    return target
