"""Plain-text tables for list commands (aligned columns, no box drawing)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["print_table"]


def print_table(
    header: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    *,
    empty: str | None = None,
    out: TextIO | None = None,
) -> None:
    """Print ``rows`` in left-aligned columns (two spaces apart) under ``header``.

    With no rows, prints ``empty`` (to stderr, so stdout stays empty) when given.
    """
    stream = out or sys.stdout
    if not rows:
        if empty:
            print(empty, file=sys.stderr, flush=True)
        return
    table = [list(header)] if header else []
    table += [[cell.replace("\n", " ") for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        stream.write("  ".join(cells).rstrip() + "\n")
    stream.flush()
