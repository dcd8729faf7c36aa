"""One local network per data directory: an exclusive lock taken before the database opens.

A second network on a directory already served would otherwise open (and write to) the live
database before it found its port taken. The lock is ``flock`` on ``DIR/devnet.lock``, which
holds the owner's pid for the refusal message. The kernel drops the lock with the process,
so a network killed with SIGKILL leaves a file that blocks nobody. Platforms without
``fcntl`` (Windows) run unlocked.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

if sys.platform != "win32":
    import fcntl

__all__ = ["LOCK_FILE", "DataDirInUseError", "DataDirLock"]

#: The lock file's name inside the data directory.
LOCK_FILE = "devnet.lock"


class DataDirInUseError(RuntimeError):
    """Another local network serves this data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        owner = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"data dir {data_dir} is in use by blocks devnet ({owner}); stop it or pass --data-dir"
        )
        self.data_dir = data_dir
        self.pid = pid


class DataDirLock:
    """The exclusive lock on a data directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create the directory if needed and lock it, or raise :class:`DataDirInUseError`."""
        if self._fd is not None or sys.platform == "win32":
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirInUseError(self.data_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Unlock (the file stays: removing it could race a process opening it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor drops the flock


def _read_pid(fd: int) -> int | None:
    """The pid the owner wrote (None while it is still writing it, or if unreadable)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
