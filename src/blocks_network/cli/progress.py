"""Progress output on stderr: status lines, and a bar on a terminal.

On a terminal (``stream.isatty()``) a transfer is one line redrawn in place with ``\\r``:
``downloading  [##########----------]  50%  1.0/2.0 MB``. When the output is piped there
is no redrawing and no control character: a transfer prints one line when it starts and
one when it ends, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from blocks_network.cli.common import human_size

__all__ = ["ProgressBar", "Reporter"]

BAR_WIDTH = 24


class Reporter:
    """Writes ``[task] ...`` status lines to ``stream`` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, *, prefix: str = "[task]") -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.tty = _isatty(self.stream)
        # Live stream text shown on the same stream left its line unended.
        self._open_line = False

    def line(self, text: str) -> None:
        """One status line; it starts on a line of its own even after partial stream text."""
        start = "\n" if self._open_line else ""
        self._open_line = False
        self.stream.write(f"{start}{self.prefix} {text}\n")
        self.stream.flush()

    def partial(self, text: str) -> None:
        """Live stream text on the same stream, which need not end its line (a status line
        printed meanwhile, e.g. for an event of the task channel, ends it first)."""
        if text:
            self.stream.write(text)
            self.stream.flush()
            self._open_line = not text.endswith("\n")

    def end_line(self) -> None:
        """End a line :meth:`partial` left open (nothing if none is)."""
        if self._open_line:
            self._open_line = False
            self.stream.write("\n")
            self.stream.flush()

    def bar(self, label: str, total: int) -> ProgressBar:
        """A progress bar on the same stream (redrawn on a terminal, two lines otherwise)."""
        return ProgressBar(label, total, stream=self.stream, tty=self.tty, prefix=self.prefix)


class ProgressBar:
    """A transfer of ``total`` bytes; call :meth:`advance` then :meth:`finish`."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        prefix: str = "[task]",
    ) -> None:
        self.label = label
        self.total = max(0, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.prefix = prefix
        self._started = time.monotonic()
        self._finished = False
        if self.tty:
            self._draw()
        else:
            self._write(f"{self.prefix} {label} ({human_size(self.total)})...\n")

    def advance(self, amount: int) -> None:
        """Count ``amount`` more bytes as transferred (redraws on a terminal)."""
        self.done = min(self.total, self.done + max(0, amount)) if self.total else 0
        if self.tty:
            self._draw()

    def finish(self, summary: str | None = None) -> None:
        """Complete the bar (100 %) and print ``summary: SIZE in T s``; safe to call twice."""
        if self._finished:
            return
        self._finished = True
        self.done = self.total
        elapsed = time.monotonic() - self._started
        text = f"{summary or self.label}: {human_size(self.total)} in {elapsed:.2f} s"
        if self.tty:
            self._draw()
            self._write("\n")
        self._write(f"{self.prefix} {text}\n")

    def render(self) -> str:
        """The bar's current text (no control characters)."""
        fraction = 1.0 if self.total == 0 else self.done / self.total
        filled = round(fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return (
            f"{self.prefix} {self.label}  [{bar}] {fraction * 100:3.0f}%  "
            f"{human_size(self.done)}/{human_size(self.total)}"
        )

    def _draw(self) -> None:
        self._write("\r" + self.render())

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
