"""``blocks-run --reload``: which files changed (polling their modification times), and
forgetting the handler's modules so that loading it again reads the edited files.

Polling (no new dependency): a handful of files looked at twice a second cost nothing, and
it behaves the same on every OS and in containers where inotify events do not cross a
bind mount.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileWatcher", "forget_modules", "handler_files"]

_Stamp = tuple[int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        stat = path.stat()
    except OSError:
        return None  # missing (an editor mid-rename): a change once it is back
    return stat.st_mtime_ns, stat.st_size


class FileWatcher:
    """Remembers each file's modification time and size; :meth:`changed` reports the files
    whose stamp differs from the last look (created, edited, removed). Not thread-safe."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._stamps: dict[Path, _Stamp] = {}
        self.watch(paths)

    @property
    def paths(self) -> list[Path]:
        return sorted(self._stamps)

    def watch(self, paths: Iterable[Path]) -> None:
        """Watch exactly ``paths`` from now on (stamps of files already watched are kept)."""
        wanted = {Path(p).resolve() for p in paths}
        self._stamps = {p: self._stamps[p] if p in self._stamps else _stamp(p) for p in wanted}

    def changed(self) -> list[Path]:
        """The watched files that changed since the previous call, sorted."""
        found = []
        for path, old in self._stamps.items():
            new = _stamp(path)
            if new != old:
                self._stamps[path] = new
                found.append(path)
        return sorted(found)


def handler_files(handler: object, package_dir: Path) -> list[Path]:
    """The Python files ``--reload`` watches for ``handler``: its module's file and the
    ``.py`` files beside it (which it may import). Nothing for a built-in handler, whose
    module lies in ``package_dir``."""
    module = sys.modules.get(getattr(handler, "__module__", "") or "")
    source = getattr(module, "__file__", None)
    if not source:
        return []
    folder = Path(source).resolve().parent
    if folder == package_dir or package_dir in folder.parents:
        return []
    return [folder / name for name in os.listdir(folder) if name.endswith(".py")]


def forget_modules(folders: Iterable[Path]) -> list[str]:
    """Drop from ``sys.modules`` every module loaded from a file in ``folders`` (not their
    subfolders), so the next import executes the file again; returns their names."""
    wanted = {Path(f).resolve() for f in folders}
    gone = []
    for name, module in list(sys.modules.items()):
        source = getattr(module, "__file__", None)
        if source and Path(source).resolve().parent in wanted:
            del sys.modules[name]
            gone.append(name)
    return gone
