"""Request parts (§4.3, seed "Part Helpers"): ``text_part``, ``file_part`` and their encoding.

A part is a plain dict (``SendMessageRequestPart``). ``file_part`` reads a file (or takes
bytes) at call time and keeps the bytes under ``"file"``; ``send_message`` then sends them
inline as a base64 ArtifactRef when they fit ``ARTIFACT_INLINE_LIMIT_BYTES`` (16 KiB by
default) and through a presigned upload otherwise, up to 25 MiB.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from blocks_network.errors import ArtifactError, ConfigError
from blocks_network.protocol.artifacts import DEFAULT_MIME_TYPE, InlineArtifactRef
from blocks_network.protocol.constants import (
    DEFAULT_FILE_PART_ID,
    DEFAULT_TEXT_PART_ID,
    MAX_UPLOAD_BYTES,
)
from blocks_network.protocol.parts import RequestPart

__all__ = ["SendMessageRequestPart", "encode_request_parts", "file_part", "text_part"]

#: A request part as ``send_message`` accepts it: wire keys plus, for files, ``file`` bytes.
SendMessageRequestPart: TypeAlias = dict[str, Any]
#: ``upload(data, file_name=, mime_type=, part_id=)`` → the upload session id.
Uploader = Callable[..., str]

_LOCAL_KEYS = ("file", "fileName", "file_name")
_DEFAULT_BYTES_NAME = "file"
_DEFAULT_RAW_NAME = "attachment"


def text_part(text: str, part_id: str = DEFAULT_TEXT_PART_ID) -> SendMessageRequestPart:
    """``{"partId": part_id, "text": text}``."""
    if not isinstance(text, str):
        raise ConfigError(f"text_part needs a str, got {type(text).__name__}")
    return {"partId": part_id, "text": text}


def _too_large(name: str, size: int) -> ArtifactError:
    return ArtifactError(
        f"file {name!r} is {size} bytes; the limit for a request file is {MAX_UPLOAD_BYTES} "
        "bytes (25 MiB): send a smaller file or a link to it"
    )


def file_part(
    path_or_data: str | os.PathLike[str] | bytes | bytearray,
    *,
    part_id: str = DEFAULT_FILE_PART_ID,
    file_name: str | None = None,
    content_type: str = DEFAULT_MIME_TYPE,
) -> SendMessageRequestPart:
    """A file part from a path (``str``/``Path``, read now) or from ``bytes``/``bytearray``.

    ``file_name`` defaults to the path's basename, or ``"file"`` for raw bytes. Raises
    ArtifactError when the path does not exist or is not a readable file, or when the file is
    larger than 25 MiB.
    """
    if isinstance(path_or_data, (bytes, bytearray)):
        data = bytes(path_or_data)
        name = file_name or _DEFAULT_BYTES_NAME
        if len(data) > MAX_UPLOAD_BYTES:
            raise _too_large(name, len(data))
    elif isinstance(path_or_data, (str, os.PathLike)):
        path = Path(path_or_data)
        name = file_name or path.name or _DEFAULT_BYTES_NAME
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise ArtifactError(f"file_part: {str(path)!r} is not a regular file")
            if size > MAX_UPLOAD_BYTES:
                raise _too_large(name, size)
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"file_part: no such file {str(path)!r} (resolved to {path.resolve()}); "
                "pass an existing path or the bytes themselves"
            ) from exc
        except OSError as exc:
            raise ArtifactError(f"file_part: cannot read {str(path)!r}: {exc}") from exc
    else:
        raise ConfigError(
            "file_part needs a path (str or pathlib.Path) or bytes, got "
            f"{type(path_or_data).__name__}"
        )
    return {"partId": part_id, "contentType": content_type, "fileName": name, "file": data}


def _part_dict(part: object, index: int) -> dict[str, Any]:
    if isinstance(part, RequestPart):
        return part.to_wire()
    if isinstance(part, Mapping):
        return dict(part)
    raise ConfigError(
        f"request_parts[{index}] must be a dict (use text_part()/file_part()), got "
        f"{type(part).__name__}"
    )


def encode_request_parts(
    parts: Sequence[object], *, inline_limit: int, upload: Uploader
) -> tuple[list[dict[str, Any]], str | None]:
    """Wire parts for SendMessage and the upload session id if any file was uploaded.

    Files ≤ ``inline_limit`` bytes become inline ArtifactRefs on their part; larger ones are
    uploaded with ``upload`` and the part keeps only ``partId`` and ``contentType``.
    Raises ConfigError for a malformed part, ArtifactError for a file over 25 MiB.
    """
    if isinstance(parts, (str, bytes, Mapping)) or not isinstance(parts, Sequence):
        raise ConfigError("request_parts must be a list of parts, e.g. [text_part('hi')]")
    wire_parts: list[dict[str, Any]] = []
    session_id: str | None = None
    for index, part in enumerate(parts):
        raw = _part_dict(part, index)
        data = raw.get("file")
        if not isinstance(data, (bytes, bytearray)):
            wire_parts.append({k: v for k, v in raw.items() if k not in _LOCAL_KEYS})
            continue
        data = bytes(data)
        part_id = raw.get("partId")
        if not isinstance(part_id, str) or not part_id:
            raise ConfigError(
                f"request_parts[{index}] carries a file but no partId; use file_part(..., "
                "part_id=...) with an id the agent card declares"
            )
        name = raw.get("fileName") or raw.get("file_name") or _DEFAULT_RAW_NAME
        mime = raw.get("contentType") or DEFAULT_MIME_TYPE
        if len(data) > MAX_UPLOAD_BYTES:
            raise _too_large(str(name), len(data))
        # A part carries text or a file, never both.
        wire = {k: v for k, v in raw.items() if k not in (*_LOCAL_KEYS, "text", "artifactRef")}
        if len(data) <= inline_limit:
            ref = InlineArtifactRef.from_bytes(data, mime_type=mime, file_name=str(name))
            wire["artifactRef"] = ref.to_wire()
        else:
            session_id = upload(data, file_name=str(name), mime_type=mime, part_id=part_id)
            wire = {"partId": part_id, "contentType": mime}
        wire_parts.append(wire)
    return wire_parts, session_id
