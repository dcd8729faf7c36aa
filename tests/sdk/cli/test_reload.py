"""``--reload``'s parts: which files changed, and forgetting the handler's modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from blocks_network.cli.reload import FileWatcher, forget_modules, handler_files
from blocks_network.handlers import echo


def _touch(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_changed_reports_edits_removals_and_returns_once(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.json"
    _touch(a, "x = 1\n", 1_000_000_000)
    _touch(b, "{}", 1_000_000_000)
    watcher = FileWatcher([a, b])
    assert watcher.changed() == []
    _touch(a, "x = 22\n", 1_000_000_000)  # same mtime, other size: still a change
    assert watcher.changed() == [a.resolve()]
    assert watcher.changed() == []
    _touch(b, "{}", 2_000_000_000)
    b.unlink()
    assert watcher.changed() == [b.resolve()]
    _touch(b, "{}", 3_000_000_000)
    assert watcher.changed() == [b.resolve()]


def test_watch_keeps_the_stamps_of_files_already_watched(tmp_path: Path) -> None:
    a, c = tmp_path / "a.py", tmp_path / "c.py"
    _touch(a, "1", 1_000_000_000)
    watcher = FileWatcher([a])
    _touch(a, "22", 2_000_000_000)
    _touch(c, "3", 1_000_000_000)
    watcher.watch([a, c])
    assert watcher.changed() == [a.resolve()]  # the edit before watch() is not lost
    assert watcher.paths == sorted([a.resolve(), c.resolve()])


def test_handler_files_are_the_modules_folder_but_never_the_packages_own(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def run(task, ctx):\n    return None\n")
    (tmp_path / "helper.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        import mine  # type: ignore[import-not-found]

        found = handler_files(mine.run, Path(echo.__file__).parent)
        assert sorted(p.name for p in found) == ["helper.py", "mine.py"]
        assert forget_modules([tmp_path]) == ["mine"]
        assert "mine" not in sys.modules
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mine", None)
    assert handler_files(echo.echo_handler, Path(echo.__file__).parent) == []
