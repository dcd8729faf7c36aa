"""Reading artifacts (§7): inline refs decode locally, file refs download via PubNub Files.

``download_artifact(ref, pubnub)`` is the standalone form; ``pubnub`` must hold a token that
grants read on ``ref.channel`` (a task read token does). ``save_artifacts`` writes every
artifact of a task into a directory, under a safe name whatever name the agent chose, and
one artifact it cannot save never stops the others (see docs/consumer.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pubnub.exceptions import PubNubException
from pubnub.pubnub import PubNub

from blocks_network.errors import ArtifactError, ArtifactSaveError
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
    "artifact_file_name",
    "coerce_artifact_ref",
    "download_artifact",
    "safe_artifact_path",
    "save_artifacts",
]

logger = logging.getLogger(__name__)

#: Saved file names are cut to what common file systems allow in one path component.
MAX_SAVED_NAME_BYTES = 255
#: An extension up to this long survives cutting a long name.
_MAX_KEPT_EXTENSION = 16


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
    parsed = inline_or_file(ref)
    if isinstance(parsed, DownloadedArtifact):
        return parsed
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
        raise download_failed(parsed, exc, status) from exc
    return downloaded(parsed, envelope.result.data)


def inline_or_file(ref: ArtifactRef | Mapping[str, Any]) -> DownloadedArtifact | FileArtifactRef:
    """An inline ref's bytes, or a file ref that can be downloaded (it has a name); raises
    ArtifactError for corrupt inline data or a nameless file (both APIs' first step)."""
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
    return parsed


def download_failed(ref: FileArtifactRef, cause: object, status: int | None) -> ArtifactError:
    """The error for a file download that failed (``status``: the HTTP one, if any)."""
    hint = (
        "the read token expired or does not cover that channel"
        if status == 403
        else "the file may have expired or the network is unreachable"
    )
    return ArtifactError(
        f"could not download artifact {ref.file_name!r} ({ref.file_id}) from "
        f"{ref.channel}: {cause}; {hint}"
    )


def downloaded(ref: FileArtifactRef, data: object) -> DownloadedArtifact:
    """A file ref's downloaded body as the artifact; ArtifactError if it is not bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise ArtifactError(f"download of {ref.file_name!r} returned no bytes")
    return DownloadedArtifact(bytes(data), ref.mime_type, ref.file_name)


def _clip_utf8(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` UTF-8 bytes, keeping a short extension."""
    if len(name.encode("utf-8", errors="surrogatepass")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and len(ext) <= _MAX_KEPT_EXTENSION else ""
    head = name[: len(name) - len(suffix)]
    room = limit - len(suffix.encode("utf-8", errors="surrogatepass"))
    clipped = head.encode("utf-8", errors="surrogatepass")[:room]
    return clipped.decode("utf-8", errors="ignore") + suffix


def _unwritable(ch: str) -> bool:
    # Control characters end or garble a path; lone surrogates cannot be encoded at all.
    code = ord(ch)
    return code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF


def artifact_file_name(file_name: str | None, index: int) -> str:
    """The name ``save_artifacts`` gives artifact ``index``: the name's last component with
    control characters (NUL included) and lone surrogates as ``_``, cut to 255 UTF-8 bytes (keeping a short
    extension); ``artifact-{index}`` when nothing usable is left."""
    name = (file_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if _unwritable(ch) else ch for ch in name).strip()
    name = _clip_utf8(name, MAX_SAVED_NAME_BYTES).strip()
    return f"artifact-{index}" if name in ("", ".", "..") else name


def safe_artifact_path(directory: Path, file_name: str | None, index: int) -> Path:
    """Where ``save_artifacts`` writes artifact ``index`` (see :func:`artifact_file_name`).

    Raises ArtifactError if the result would still leave ``directory`` (a symbolic link).
    """
    root = directory.resolve()
    target = (root / artifact_file_name(file_name, index)).resolve()
    if target.parent != root:
        raise ArtifactError(
            f"artifact file name {file_name!r} resolves outside {root}; refusing to write it"
        )
    return target


def _distinct(path: Path, taken: set[Path], index: int) -> Path:
    # Two artifacts of one call with the same name must not overwrite each other.
    if path not in taken:
        return path
    stem, dot, ext = path.name.rpartition(".")
    name = f"{stem}-{index}.{ext}" if dot and stem else f"{path.name}-{index}"
    return path.with_name(_clip_utf8(name, MAX_SAVED_NAME_BYTES))


def _write_whole(path: Path, data: bytes) -> None:
    # Written beside the target and renamed: a failed write leaves no half-written file.
    fd, temp = tempfile.mkstemp(prefix=".artifact-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def save_artifacts(
    refs: Sequence[ArtifactRef],
    directory: str | os.PathLike[str],
    download: Callable[[ArtifactRef], DownloadedArtifact],
) -> list[Path]:
    """Download each ref with ``download`` and write it into ``directory`` (created if
    needed); returns the paths in ref order.

    Names are made safe by :func:`artifact_file_name`; a name repeated within the call gets
    ``-{index}`` before its extension; a file already on disk is replaced. An artifact that
    cannot be saved (download failed, the name is an existing directory, the disk refused)
    does not stop the others: after trying all, ArtifactSaveError lists what failed and
    what was saved.
    """
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create the artifact directory {str(target)!r}: {exc}") from exc
    saved: list[Path] = []
    taken: set[Path] = set()
    failed: list[tuple[int, str, str]] = []
    for index, ref in enumerate(refs):
        name = ref.file_name or f"artifact-{index}"
        try:
            artifact = download(ref)
            path = _distinct(safe_artifact_path(target, artifact.file_name, index), taken, index)
            _write_whole(path, artifact.data)
        except (ArtifactError, OSError, ValueError) as exc:
            logger.warning("artifact %d (%r) not saved: %s", index, name, exc)
            failed.append((index, name, str(exc)))
            continue
        saved.append(path)
        taken.add(path)
    if failed:
        listed = "; ".join(f"#{i} {n!r}: {reason}" for i, n, reason in failed)
        raise ArtifactSaveError(
            f"{len(failed)} of {len(refs)} artifacts were not saved in {str(target)!r} "
            f"(the other {len(saved)} were): {listed}",
            saved=saved,
            failed=failed,
        )
    return saved
