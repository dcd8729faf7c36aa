"""Exit codes and one-line errors: bad arguments (2), configuration (2), failures (1), an
unreachable network (3); and ``--help`` on every command."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import Runner

NETWORK_COMMANDS = [
    ("send", "echo", "hi"),
    ("watch", "t_1"),
    ("tasks", "list"),
    ("tasks", "get", "t_1"),
    ("tasks", "cancel", "t_1"),
    ("agents", "list"),
    ("agents", "get", "echo"),
]
ALL_HELP = [
    (),
    ("devnet",),
    ("devnet", "keys", "create"),
    ("send",),
    ("watch",),
    ("tasks",),
    ("tasks", "list"),
    ("tasks", "get"),
    ("tasks", "cancel"),
    ("agents",),
    ("agents", "list"),
    ("agents", "get"),
    ("publish",),
]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/config.json"


@pytest.mark.parametrize("command", ALL_HELP, ids=lambda c: " ".join(c) or "blocks")
def test_help_everywhere(command: tuple[str, ...], blocks: Runner) -> None:
    result = blocks(*command, "--help")
    assert result.code == 0
    assert result.out.startswith("usage: blocks")


def test_top_level_help_documents_exit_codes(blocks: Runner) -> None:
    out = blocks("--help").out
    assert "2 usage or configuration" in out and "3 network unreachable" in out


@pytest.mark.parametrize(
    "argv",
    [
        (),
        ("nonsense",),
        ("send",),
        ("send", "echo", "hi", "--timeout", "soon"),
        ("send", "echo", "hi", "--billing-mode", "cheap"),
        ("tasks",),
        ("tasks", "list", "--state", "sleeping"),
        ("agents", "frobnicate"),
        ("publish", "--price-per-task", "-1"),
    ],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_bad_arguments_exit_2_with_usage(argv: tuple[str, ...], blocks: Runner) -> None:
    result = blocks(*argv)
    assert result.code == 2
    assert "usage: blocks" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("send", "echo", "hi", "--timeout", "0"), "--timeout must be a positive"),
        (("send", "echo", "hi", "--file", "missing.bin"), "--file missing.bin: no such file"),
        (("tasks", "list", "--limit", "0"), "--limit must be at least 1"),
        (("publish", "missing.json"), "missing.json: no such file"),
        (("devnet", "--retention-days", "-1"), "retention_days must be 0 (keep forever)"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    argv: tuple[str, ...], message: str, blocks: Runner
) -> None:
    result = blocks(*argv)
    assert result.code == 2
    assert result.err.count("\n") == 1 and message in result.err


@pytest.mark.parametrize("command", NETWORK_COMMANDS, ids=" ".join)
def test_missing_api_key_exits_2_and_says_what_to_do(
    command: tuple[str, ...], blocks: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BLOCKS_API_KEY")
    result = blocks(*command)
    if command[0] == "agents":  # registry reads need no key
        return
    assert result.code == 2
    assert result.err.startswith(f"blocks {command[0]}")
    assert "BLOCKS_API_KEY is not set" in result.err and "blocks devnet" in result.err


@pytest.mark.parametrize("command", [*NETWORK_COMMANDS, ("publish", "card.json")], ids=" ".join)
def test_unreachable_network_exits_3(
    command: tuple[str, ...], blocks: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "card.json").write_text(
        (Path(__file__).parents[3] / "examples" / "echo" / "agent-card.json").read_text()
    )
    url = closed_port_url()
    monkeypatch.setenv("BLOCKS_CDM_URL", url)
    result = blocks(*command)
    assert result.code == 3, result.err
    assert url in result.err and "Connection refused" in result.err
    assert "Traceback" not in result.err


def test_unreachable_hosted_default_suggests_the_local_network(
    blocks: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No BLOCKS_CDM_URL: the hosted default is tried (and is not reachable from tests).
    monkeypatch.setenv("BLOCKS_CDM_URL", "")
    monkeypatch.setenv("BLOCKS_BACKEND_URL", "")
    result = blocks("agents", "list")
    if result.code == 0:
        pytest.skip("the hosted network is reachable from this machine")
    assert result.code == 3
    assert "BLOCKS_CDM_URL is not set" in result.err and "blocks devnet" in result.err


@pytest.mark.parametrize(
    "command", [("send", "echo", "hi"), ("tasks", "list"), ("publish", "card.json")], ids=" ".join
)
def test_a_rejected_api_key_exits_1_with_one_sentence(
    command: tuple[str, ...], blocks: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "card.json").write_text(
        (Path(__file__).parents[3] / "examples" / "echo" / "agent-card.json").read_text()
    )
    monkeypatch.setenv("BLOCKS_API_KEY", "bk_not_a_real_key")
    result = blocks(*command)
    assert result.code == 1
    prog = " ".join(("blocks", *command[:2])) if command[0] == "tasks" else f"blocks {command[0]}"
    assert result.err == (
        f"{prog}: BLOCKS_API_KEY is invalid or revoked: use the key `blocks devnet` "
        "prints (export its two lines or put them in ./.env), or create one with "
        "`blocks devnet keys create --user NAME`\n"
    )


def test_credentials_from_dot_env(
    blocks: Runner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = ("BLOCKS_CDM_URL", "BLOCKS_API_KEY")
    (tmp_path / ".env").write_text("".join(f"{name}={cli_env[name]}\n" for name in names))
    for name in names:
        monkeypatch.delenv(name)
    result = blocks("tasks", "list")
    assert result.code == 0, result.err
