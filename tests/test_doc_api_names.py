"""The user guides name methods that exist, with the return types they state.

Every ``ctx.NAME``, ``client.NAME``, ``session.NAME`` and ``stream.NAME`` (in text, tables or
code) of docs/writing-handlers.md, docs/consumers.md and docs/streams.md is a member of the
class it stands for, and so is every ``on_*`` callback consumers.md lists; a table row ``| `ctx.NAME(...)` → `Type` ...`` states the return
annotation; the members of streams.md's StreamClient table and the options of its
create_stream table exist.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from blocks_network.consumer.task_client import TaskClient
from blocks_network.consumer.task_session import TaskSession
from blocks_network.stream.client import StreamClient
from blocks_network.stream.context import AgentStreams
from blocks_network.types import TaskContext

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "docs" / name for name in ("writing-handlers.md", "consumers.md", "streams.md")]
CLASSES: dict[str, type] = {
    "ctx": TaskContext,
    "client": TaskClient,
    "session": TaskSession,
    "stream": StreamClient,
}
MENTION = re.compile(r"(?<![\w.])(ctx|client|session|stream)\.([a-z_]+)")
#: A table row whose first cell names a method and states what it returns: ``→ `Type` ``.
RETURNS = re.compile(r"^\| `(ctx|client|session|stream)\.([a-z_]+)\(.*?\)` → `([A-Za-z_]+)")


def _has_member(cls: type, name: str) -> bool:
    """A class attribute, or an attribute every instance gets in ``__init__``."""
    init = inspect.getsource(cls.__init__)  # type: ignore[misc]
    return hasattr(cls, name) or re.search(rf"self\.{name}\b\s*[:=]", init) is not None


def _table_rows(text: str, header: str) -> list[str]:
    """The first cells of the table that follows the line ``header``."""
    lines = text.splitlines()
    start = lines.index(header) + 2  # the header row and its |---| row
    cells = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells.append(line.split("|")[1])
    return cells


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_named_method_exists(guide: Path) -> None:
    mentions = set(MENTION.findall(guide.read_text()))
    assert mentions, f"{guide.name} names no ctx/client/session/stream members"
    missing = sorted(
        f"{obj}.{name}" for obj, name in mentions if not _has_member(CLASSES[obj], name)
    )
    assert not missing, f"{guide.name} names members that do not exist: {missing}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_stated_return_types_match_the_annotations(guide: Path) -> None:
    wrong = []
    for line in guide.read_text().splitlines():
        match = RETURNS.match(line)
        if match is None:
            continue
        obj, name, stated = match.groups()
        annotation = inspect.signature(getattr(CLASSES[obj], name)).return_annotation
        if getattr(annotation, "__name__", annotation) != stated:
            wrong.append(f"{obj}.{name}: doc says {stated}, code says {annotation}")
    assert not wrong, f"{guide.name}: {wrong}"


def test_the_download_row_states_its_return_type() -> None:
    # The guard of the test above: the row that once said "the bytes" must keep its arrow.
    text = (ROOT / "docs" / "writing-handlers.md").read_text()
    assert any(
        RETURNS.match(line) and "download_input_artifact" in line for line in text.splitlines()
    )


def test_stream_client_table_names_its_members() -> None:
    text = (ROOT / "docs" / "streams.md").read_text()
    names = {
        name
        for cell in _table_rows(text, "| member | |")
        for name in re.findall(r"`([a-z_]+)", cell)
    }
    assert {"inbound", "write", "end", "finished"} <= names
    missing = sorted(name for name in names if not _has_member(StreamClient, name))
    assert not missing, f"streams.md's StreamClient table: no such members {missing}"


def test_create_stream_table_names_its_options() -> None:
    text = (ROOT / "docs" / "streams.md").read_text()
    options = {
        name
        for cell in _table_rows(text, "| option | default | meaning |")
        for name in re.findall(r"`([a-z_]+)`", cell)
    }
    assert {"direction", "format", "affinity"} <= options
    accepted = set(inspect.signature(AgentStreams.create).parameters)
    assert options <= accepted, f"create_stream options not accepted: {options - accepted}"


def test_consumer_callbacks_exist() -> None:
    text = (ROOT / "docs" / "consumers.md").read_text()
    callbacks = set(re.findall(r"`(on_[a-z_]+)`", text))
    assert {"on_event", "on_terminal", "on_stream"} <= callbacks
    missing = sorted(name for name in callbacks if not hasattr(TaskSession, name))
    assert not missing, f"consumers.md names session callbacks that do not exist: {missing}"
