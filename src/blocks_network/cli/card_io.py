"""What an agent's card says about calling it: part ids, task kind, a working example.

``blocks send`` picks part ids from the registry's card when the choice is unambiguous
(``text``/``file`` when declared, else the one input that fits); ``blocks publish`` prints a
``blocks send`` line that works for the card it registered.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping

from blocks_network.cli.common import EXIT_USAGE, CliError
from blocks_network.protocol.agent_card import AgentCard, CardInput, validate_agent_card
from blocks_network.protocol.constants import (
    DEFAULT_FILE_PART_ID,
    DEFAULT_TEXT_PART_ID,
    TASK_KIND_PIPE,
)
from blocks_network.protocol.errors import AgentCardError

__all__ = ["card_of", "example_send", "file_part_id", "only_kind", "text_part_id"]

#: The ``--duration`` the publish hint suggests for pipe agents (minutes).
EXAMPLE_DURATION_MIN = 1


def card_of(document: object) -> AgentCard | None:
    """The validated card, or None (no card, or one we cannot read: the backend then judges
    the parts itself)."""
    if not isinstance(document, Mapping):
        return None
    try:
        return validate_agent_card(document)
    except AgentCardError:
        return None


def _wants_file(item: CardInput) -> bool:
    """A binary input, or one named ``file``: sent with ``--file``, not as TEXT."""
    return item.content_class == "file" or item.id == DEFAULT_FILE_PART_ID


def text_part_id(card: AgentCard | None) -> str:
    """``text`` when declared (or no card); else the only text or JSON input; else ``text``."""
    if card is None or any(i.id == DEFAULT_TEXT_PART_ID for i in card.inputs):
        return DEFAULT_TEXT_PART_ID
    textual = [i.id for i in card.inputs if not _wants_file(i)]
    return textual[0] if len(textual) == 1 else DEFAULT_TEXT_PART_ID


def file_part_id(card: AgentCard | None, taken: Collection[str], path: str) -> str:
    """The part id of ``--file PATH``: ``file`` when declared (or no card); else the one
    input not already ``taken``; raises CliError (exit 2) when several remain."""
    if card is None or any(i.id == DEFAULT_FILE_PART_ID for i in card.inputs):
        return DEFAULT_FILE_PART_ID
    free = [i for i in card.inputs if i.id not in taken]
    files = [i for i in free if _wants_file(i)]
    for candidates in (free, files):
        if len(candidates) == 1:
            return candidates[0].id
    if not free:
        return DEFAULT_FILE_PART_ID  # nothing left: the backend names the declared inputs
    names = ", ".join(i.id for i in free)
    raise CliError(
        f"--file {path}: agent {card.agent_name!r} has several inputs it could be ({names}); "
        f"name one: --file ID={path}",
        EXIT_USAGE,
    )


def only_kind(card: AgentCard | None) -> str | None:
    """The task kind when the card allows exactly one, else None (the network's default)."""
    return card.task_kinds[0] if card is not None and len(card.task_kinds) == 1 else None


def example_send(card: AgentCard) -> str:
    """A ``blocks send`` command line that this agent accepts (placeholders for files)."""
    words = ["blocks", "send", card.agent_name]
    wanted = [i for i in card.inputs if i.required]
    text_id = text_part_id(card)
    textual = [i for i in wanted if not _wants_file(i)]
    if textual:
        first = textual[0]
        words.append("{}" if first.content_class == "form" else "hello")
        if first.id != text_id:
            words += ["--text-part-id", first.id]
    for item in wanted:
        if _wants_file(item) or (textual and item is not textual[0]):
            words += ["--file", f"{item.id}=PATH"]
    if only_kind(card) == TASK_KIND_PIPE:
        words += ["--kind", TASK_KIND_PIPE, "--duration", str(EXAMPLE_DURATION_MIN)]
    return shlex.join(words)
