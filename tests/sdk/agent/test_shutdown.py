"""The drain's steps and what it says at each, on a runner stand-in (no network)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, cast

import pytest

from blocks_network.agent.shutdown import drain
from blocks_network.agent.task_runner import TaskRunner
from blocks_network.cli.agent_supervisor import exit_code_for
from blocks_network.cli.exit_codes import EXIT_FAILURE, EXIT_UNREACHABLE, EXIT_USAGE
from blocks_network.errors import (
    ApiKeyInvalidError,
    BackendError,
    CertificateError,
    ConfigError,
    NetworkError,
    ProxyError,
)
from blocks_network.handlers.loader import HandlerLoadError


class StuckRunner:
    """Handlers that never return, whatever they are told."""

    def __init__(self, task_ids: list[str]) -> None:
        self.task_ids = task_ids
        self.calls: list[str] = []

    def in_flight(self) -> list[str]:
        return list(self.task_ids)

    def wait_idle(self, timeout: float) -> bool:
        time.sleep(min(timeout, 0.01))
        return False

    def cancel_all(self) -> list[str]:
        self.calls.append("cancel_all")
        return list(self.task_ids)

    def force_end_all(self) -> int:
        self.calls.append("force_end_all")
        return len(self.task_ids)


def _runner(stub: StuckRunner) -> TaskRunner:
    return cast(TaskRunner, stub)


def test_drain_says_what_it_waits_for_then_cancels_and_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = StuckRunner(["t_1", "t_2"])
    with caplog.at_level(logging.INFO, logger="blocks_network.agent.shutdown"):
        report = drain(_runner(stub), 0.05, cancel_wait_s=0.02, hint="press Ctrl+C again")
    assert stub.calls == ["cancel_all", "force_end_all"]
    assert (report.finished_in_grace, report.cancelled, report.forced) == (False, 2, 2)
    assert [r.getMessage() for r in caplog.records] == [
        "stopping: waiting up to 0.05 s for 2 running tasks (t_1, t_2) — press Ctrl+C again",
        "2 running tasks still running after 0.05 s: cancelled, waiting up to 0.02 s for them "
        "to return",
        "ended 2 open tasks as canceled on shutdown",
    ]


def test_drain_ends_at_once_when_told_to_stop_now() -> None:
    stub = StuckRunner(["t_1"])
    now = threading.Event()
    threading.Timer(0.1, now.set).start()
    began = time.monotonic()
    report = drain(_runner(stub), 600.0, cancel_wait_s=600.0, now=now)
    assert time.monotonic() - began < 60  # not the 600 s grace: the event cut it short
    assert stub.calls == ["cancel_all", "force_end_all"]
    assert (report.cancelled, report.forced) == (0, 1)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("no key"), EXIT_USAGE),
        (HandlerLoadError("agent-card.json", "runtime.handler", "required"), EXIT_USAGE),
        (CertificateError("bad cert", host="h", port=1), EXIT_USAGE),
        (NetworkError("down"), EXIT_UNREACHABLE),
        (ProxyError("no tunnel", proxy="p"), EXIT_UNREACHABLE),
        (ApiKeyInvalidError("invalid"), EXIT_FAILURE),
        (BackendError("refused", status=409), EXIT_FAILURE),
        (RuntimeError("bug"), EXIT_FAILURE),
    ],
)
def test_exit_code_for_start_up_errors(error: Any, code: int) -> None:
    assert exit_code_for(error) == code
