"""One local network per data dir: a second one refuses before it touches the database."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.data_dir_lock import LOCK_FILE, DataDirInUseError
from blocks_devnet.network import LocalNetwork
from blocks_devnet.realtime.__main__ import main as realtime_main
from blocks_devnet.realtime.server import RealtimeServer
from tests.conftest import OPEN_KEYSET
from tests.support.devnet_process import START_TIMEOUT, STOP_TIMEOUT, Devnet, blocks


def snapshot(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file of the data dir but the lock: (size, mtime in ns)."""
    return {
        str(path.relative_to(data_dir)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(data_dir.rglob("*"))
        if path.is_file() and path.name != LOCK_FILE
    }


def started(devnet_factory: list[Devnet], data_dir: Path) -> Devnet:
    """``blocks devnet`` on ``data_dir`` (any free port), once it serves."""
    devnet = Devnet(["--port", "0", "--data-dir", str(data_dir)])
    devnet_factory.append(devnet)
    devnet.ready_lines()
    return devnet


def test_a_second_devnet_on_the_same_data_dir_refuses_without_touching_it(
    tmp_path: Path, devnet_factory: list[Devnet]
) -> None:
    data_dir = tmp_path / "data"
    first = started(devnet_factory, data_dir)
    # Frozen, the first network writes nothing: any change below is the second one's.
    first.process.send_signal(signal.SIGSTOP)
    try:
        before = snapshot(data_dir)
        assert "devnet.sqlite3" in before
        second = subprocess.run(
            blocks("devnet", "--port", "0", "--data-dir", str(data_dir)),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        after = snapshot(data_dir)
    finally:
        first.process.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    errors = [line for line in second.stderr.splitlines() if line.startswith("blocks devnet:")]
    assert errors == [
        f"blocks devnet: data dir {data_dir} is in use by blocks devnet"
        f" (pid {first.process.pid}); stop it or pass --data-dir"
    ]
    assert "Traceback" not in second.stderr and second.stdout == ""
    assert after == before
    # The first one serves on, and stops cleanly.
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(STOP_TIMEOUT) == 0


def test_the_lock_of_a_killed_devnet_blocks_nobody(
    tmp_path: Path, devnet_factory: list[Devnet]
) -> None:
    data_dir = tmp_path / "data"
    killed = started(devnet_factory, data_dir)
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(STOP_TIMEOUT)
    lock = data_dir / LOCK_FILE
    assert lock.read_text().strip() == str(killed.process.pid)  # left behind, stale

    restarted = started(devnet_factory, data_dir)
    assert lock.read_text().strip() == str(restarted.process.pid)


def test_a_programmatic_network_takes_the_lock_and_stop_releases_it(tmp_path: Path) -> None:
    config = DevnetConfig(port=0, data_dir=tmp_path / "data")
    with LocalNetwork(config):
        with pytest.raises(DataDirInUseError) as info:
            LocalNetwork(DevnetConfig(port=0, data_dir=tmp_path / "data")).start()
        assert info.value.pid == os.getpid()
        # The standalone realtime server shares the rule.
        with pytest.raises(DataDirInUseError):
            RealtimeServer([OPEN_KEYSET], data_dir=tmp_path / "data").start()
    with LocalNetwork(config) as again:
        assert again.api_key


def test_the_standalone_realtime_server_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RealtimeServer([OPEN_KEYSET], data_dir=tmp_path / "data"):
        assert realtime_main(["--data-dir", str(tmp_path / "data")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"python -m blocks_devnet.realtime: data dir {tmp_path / 'data'} is in use by blocks"
        f" devnet (pid {os.getpid()}); stop it or pass --data-dir\n"
    )
