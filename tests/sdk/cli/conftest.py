"""Fixtures for ``blocks`` command tests: the kit's network, and running commands.

``blocks(*argv)`` runs a command in-process (fast: no interpreter start) and returns its
exit code and output; ``blocks_process(*argv)`` runs the real command
(``python -m blocks_network.cli.blocks``). Both see only BLOCKS_CDM_URL/BLOCKS_API_KEY of the test network, from a clean working
directory (no stray ./.env).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from blocks_network.cli.blocks import main
from blocks_network.testing import BlocksTestNetwork
from tests.support.kit import _no_leaked_threads, blocks_network

__all__ = ["Result", "_no_leaked_threads", "blocks_network"]

PROCESS_TIMEOUT_S = 60.0


@dataclass
class Result:
    code: int
    out: str
    err: str


Runner = Callable[..., Result]


@pytest.fixture
def cli_env(
    blocks_network: BlocksTestNetwork, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """The process environment of a user who exported the network's two lines."""
    for name in list(os.environ):
        if name.startswith("BLOCKS_"):
            monkeypatch.delenv(name)
    for key, value in blocks_network.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return dict(os.environ)


@pytest.fixture
def blocks(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Runner:
    """``blocks("send", "echo", "hi")`` → Result(code, out, err), in-process."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def blocks_process(cli_env: dict[str, str], tmp_path: Path) -> Runner:
    """``blocks_process("send", ..., stdin="")`` → Result, as a real subprocess."""

    def run(*argv: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        completed = subprocess.run(
            [sys.executable, "-m", "blocks_network.cli.blocks", *argv],
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
            env=env or cli_env,
            cwd=tmp_path,
            input=stdin,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run
