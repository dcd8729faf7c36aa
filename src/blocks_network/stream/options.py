"""Resolving ``create_stream`` options against the agent card (protocol §8.1). Pure.

The card's ``streams`` map drives the defaults: ``declared_stream`` defaults to ``_default``,
which means the card's ``_default`` entry, or its only entry when it declares exactly one;
several entries need an explicit name; an unknown name is an error. The entry's direction,
format and affinity replace the defaults (outbound, bytes, dedicated); an explicit option that
disagrees with the card is an error. Request tasks may open only outbound, dedicated, SDK-written
streams; shared streams cannot be external.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from blocks_network.protocol.agent_card import CardStream
from blocks_network.protocol.constants import (
    DEFAULT_DECLARED_STREAM,
    STREAM_AFFINITIES,
    STREAM_DEFAULT_DURATION_MINUTES,
    STREAM_DIRECTIONS,
    STREAM_FALLBACK_MAX_RUNNING_TIME_S,
    STREAM_FORMATS,
    TASK_KIND_PIPE,
    TASK_KIND_REQUEST,
    StreamAffinity,
    StreamDirection,
    StreamFormat,
    TaskKind,
)

from .errors import StreamOptionsError

__all__ = ["ResolvedStream", "duration_minutes", "resolve_stream"]


@dataclass(frozen=True)
class ResolvedStream:
    """The stream a ``create_stream`` call opens."""

    declared_stream: str
    direction: StreamDirection
    format: StreamFormat
    affinity: StreamAffinity
    external: bool


_V = TypeVar("_V", bound=str)


def _pick(
    what: str,
    explicit: str | None,
    card_value: _V | None,
    default: _V,
    allowed: tuple[_V, ...],
    declared: str,
) -> _V:
    if explicit is not None:
        chosen = next((v for v in allowed if v == explicit), None)
        if chosen is None:
            raise StreamOptionsError(
                f"{what} must be one of {', '.join(allowed)}; got {explicit!r}"
            )
        if card_value is not None and chosen != card_value:
            raise StreamOptionsError(
                f"{what}={explicit!r} conflicts with the agent card, which declares stream "
                f"{declared!r} with {what} {card_value!r}; drop the option or fix the card"
            )
        return chosen
    return card_value or default


def resolve_stream(
    card_streams: Mapping[str, CardStream],
    *,
    task_kind: TaskKind,
    declared_stream: str | None = None,
    direction: str | None = None,
    format: str | None = None,
    affinity: str | None = None,
    external: bool = False,
) -> ResolvedStream:
    """Resolve the options of one ``create_stream`` call; raises StreamOptionsError saying why."""
    name = declared_stream or DEFAULT_DECLARED_STREAM
    entry: CardStream | None = None
    if card_streams:
        if name in card_streams:
            entry = card_streams[name]
        elif name == DEFAULT_DECLARED_STREAM and len(card_streams) == 1:
            name, entry = next(iter(card_streams.items()))
        elif name == DEFAULT_DECLARED_STREAM:
            raise StreamOptionsError(
                f"the agent card declares several streams ({', '.join(sorted(card_streams))}): "
                "pass declared_stream=<name> to create_stream"
            )
        else:
            raise StreamOptionsError(
                f"declared_stream {name!r} is not in the agent card's streams "
                f"({', '.join(sorted(card_streams))})"
            )
    resolved = ResolvedStream(
        declared_stream=name,
        direction=_pick(
            "direction",
            direction,
            entry.direction if entry else None,
            "outbound",
            STREAM_DIRECTIONS,
            name,
        ),
        format=_pick(
            "format", format, entry.format if entry else None, "bytes", STREAM_FORMATS, name
        ),
        affinity=_pick(
            "affinity",
            affinity,
            entry.affinity if entry else None,
            "dedicated",
            STREAM_AFFINITIES,
            name,
        ),
        external=bool(external),
    )
    if resolved.affinity == "shared" and resolved.external:
        raise StreamOptionsError("a shared stream cannot be external: drop external=True")
    if task_kind == TASK_KIND_REQUEST:
        if resolved.direction != "outbound":
            raise StreamOptionsError(
                f"request tasks may only open outbound streams (got {resolved.direction!r}); "
                "use a pipe task for inbound or bidirectional streams"
            )
        if resolved.external:
            raise StreamOptionsError("request tasks cannot open external streams")
        if resolved.affinity != "dedicated":
            raise StreamOptionsError("request tasks cannot open shared streams")
    return resolved


def duration_minutes(
    task_kind: TaskKind, duration: float | None, max_running_time_sec: int | None
) -> int:
    """The stream token lifetime to request: the task's duration, else 60 for a pipe, else the
    agent's max running time in minutes (rounded up; 3600 s when unknown)."""
    if duration is not None and duration > 0:
        return max(1, math.ceil(duration))
    if task_kind == TASK_KIND_PIPE:
        return STREAM_DEFAULT_DURATION_MINUTES
    seconds = max_running_time_sec or STREAM_FALLBACK_MAX_RUNNING_TIME_S
    return max(1, math.ceil(seconds / 60))
