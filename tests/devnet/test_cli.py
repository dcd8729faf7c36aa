"""``blocks devnet`` and ``blocks devnet keys create`` as real subprocesses."""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import httpx
import pytest

from blocks_network.cli import blocks as blocks_cli
from blocks_network.cli.blocks import PLUGIN_GROUP, build_parser
from tests.support.backend_client import BackendClient
from tests.support.devnet_process import START_TIMEOUT, STOP_TIMEOUT, Devnet, blocks, free_port
from tests.support.task_rpc import wait_until


def test_devnet_serves_writes_env_file_accepts_new_keys_and_stops_on_sigint(
    tmp_path: Path, devnet_factory: list[Devnet]
) -> None:
    data_dir = tmp_path / "data"
    env_file = tmp_path / "out" / ".env"
    devnet = Devnet(
        ["--port", str(free_port()), "--data-dir", str(data_dir), "--env-file", str(env_file)]
    )
    devnet_factory.append(devnet)

    printed = devnet.ready_lines()
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert written == printed
    dashboard_url = printed["BLOCKS_CDM_URL"].removesuffix("config.json")
    assert devnet.lines.get(timeout=START_TIMEOUT) == f"# dashboard: {dashboard_url}"
    assert 'name="api_key"' in httpx.get(dashboard_url, timeout=5).text
    assert printed["BLOCKS_API_KEY"].startswith("bk_")
    config = httpx.get(printed["BLOCKS_CDM_URL"], timeout=5).json()
    base_url = config["api"]["baseUrl"]

    created = subprocess.run(
        blocks("devnet", "keys", "create", "--user", "bob", "--data-dir", str(data_dir)),
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT,
    )
    assert created.returncode == 0, created.stderr
    new_key = created.stdout.strip().splitlines()[-1]
    assert new_key.startswith("bk_") and new_key != printed["BLOCKS_API_KEY"]
    client = BackendClient(base_url)
    try:
        bob = client.consumer_token(new_key)
        dev = client.consumer_token(printed["BLOCKS_API_KEY"])
        assert bob["userId"] != dev["userId"]
    finally:
        client.close()

    devnet.process.send_signal(signal.SIGINT)
    assert devnet.process.wait(STOP_TIMEOUT) == 0


def test_tls_prints_the_ca_to_trust_and_keeps_it_across_restarts(
    tmp_path: Path, devnet_factory: list[Devnet]
) -> None:
    data_dir, env_file = tmp_path / "data", tmp_path / ".env"
    keys = ("BLOCKS_CDM_URL", "BLOCKS_API_KEY", "SSL_CERT_FILE")
    cas = []
    for _ in range(2):
        devnet = Devnet(
            ["--tls", "--port", "0", "--data-dir", str(data_dir), "--env-file", str(env_file)]
        )
        devnet_factory.append(devnet)
        printed = devnet.ready_lines(keys)
        assert dict(line.split("=", 1) for line in env_file.read_text().splitlines()) == printed
        assert printed["BLOCKS_CDM_URL"].startswith("https://127.0.0.1:")
        ca = Path(printed["SSL_CERT_FILE"])
        assert ca == (data_dir / "tls" / "ca.pem").resolve()
        cas.append(ca.read_bytes())
        trusted = ssl.create_default_context(cafile=ca)
        config = httpx.get(printed["BLOCKS_CDM_URL"], verify=trusted, timeout=5).json()
        assert config["api"]["baseUrl"].startswith("https://")
        assert config["realtime"]["ssl"] is True
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(printed["BLOCKS_CDM_URL"], verify=ssl.create_default_context(), timeout=5)
        devnet.process.send_signal(signal.SIGINT)
        assert devnet.process.wait(STOP_TIMEOUT) == 0
    assert cas[0] == cas[1]


def test_sigterm_also_stops_cleanly(tmp_path: Path, devnet_factory: list[Devnet]) -> None:
    devnet = Devnet(["--port", "0", "--data-dir", str(tmp_path / "data")])
    devnet_factory.append(devnet)
    devnet.ready_lines()
    devnet.process.send_signal(signal.SIGTERM)
    assert devnet.process.wait(STOP_TIMEOUT) == 0


#: Devnets signalled at once: which thread takes the SIGINT is up to the scheduler, so
#: one try alone could miss a regression.
CONTINUED_DEVNETS = 3


def _stopped(pid: int) -> bool:
    """Whether the process is stopped by a signal (state ``T`` in /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_a_sigint_sent_while_stopped_stops_it_once_continued(
    tmp_path: Path, devnet_factory: list[Devnet]
) -> None:
    devnets = [
        Devnet(["--port", "0", "--data-dir", str(tmp_path / f"data{i}")])
        for i in range(CONTINUED_DEVNETS)
    ]
    devnet_factory.extend(devnets)
    for devnet in devnets:
        devnet.ready_lines()
        devnet.process.send_signal(signal.SIGSTOP)
    pids = [devnet.process.pid for devnet in devnets]
    wait_until(lambda: all(map(_stopped, pids)), STOP_TIMEOUT, "the devnets to stop")
    # Ctrl+C while stopped, then fg: the SIGINT waits for a thread to take it, and when the
    # process continues any of its threads may, often not the main thread that waits for it.
    for devnet in devnets:
        devnet.process.send_signal(signal.SIGINT)
        devnet.process.send_signal(signal.SIGCONT)
    assert [devnet.process.wait(STOP_TIMEOUT) for devnet in devnets] == [0] * CONTINUED_DEVNETS


def test_restart_prints_the_same_api_key(tmp_path: Path, devnet_factory: list[Devnet]) -> None:
    keys = []
    for _ in range(2):
        devnet = Devnet(["--port", "0", "--data-dir", str(tmp_path / "data")])
        devnet_factory.append(devnet)
        keys.append(devnet.ready_lines()["BLOCKS_API_KEY"])
        devnet.process.send_signal(signal.SIGINT)
        assert devnet.process.wait(STOP_TIMEOUT) == 0
    assert keys[0] == keys[1]


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            blocks("devnet", "--port", str(port), "--data-dir", str(tmp_path / "data")),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("blocks devnet:")]
    assert len(errors) == 1 and "already in use" in errors[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_keys_create_without_a_network_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        blocks("devnet", "keys", "create", "--user", "x", "--data-dir", str(tmp_path / "none")),
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT,
    )
    assert result.returncode == 1
    assert "start `blocks devnet` first" in result.stderr
    assert not (tmp_path / "none").exists()


def test_parser_defaults_and_subcommands() -> None:
    parser = build_parser()
    args = parser.parse_args(["devnet"])
    assert (args.host, args.port, args.env_file) == ("127.0.0.1", 4280, None)
    args = parser.parse_args(["devnet", "keys", "create", "--user", "u", "--data-dir", "d"])
    assert (args.user, args.keys_data_dir) == ("u", "d")
    with pytest.raises(SystemExit):
        parser.parse_args(["devnet", "keys", "create"])


@pytest.mark.parametrize("module", ["blocks_devnet", "blocks_network.cli.blocks"])
def test_blocks_help_lists_devnet_from_the_entry_point(module: str) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT,
        check=True,
    ).stdout
    commands = re.findall(r"^    (\w+) ", shown, re.MULTILINE)
    assert commands == ["devnet", "send", "watch", "tasks", "agents", "publish"]


def test_a_command_group_that_fails_to_import_is_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = EntryPoint("broken", "no_such_module_here:register", PLUGIN_GROUP)
    monkeypatch.setattr(blocks_cli, "entry_points", lambda group: [broken])
    parser = build_parser()
    assert parser.parse_args(["tasks", "list"]).command == "tasks"
    assert "command 'broken' is unavailable" in caplog.text
    with pytest.raises(SystemExit):
        parser.parse_args(["devnet"])
