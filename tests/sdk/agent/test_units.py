"""Unit tests of the runtime's small parts: options, terminals, results, pools, timers, logs."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from typing import Any

import pytest

from blocks_network.agent.artifacts import prepare_artifacts
from blocks_network.agent.logging import (
    AgentLogFormatter,
    AgentLogHandler,
    TextLogFormatter,
    fields,
    format_from_env,
    level_from_env,
)
from blocks_network.agent.scheduler import Scheduler
from blocks_network.agent.shutdown import grace_from_env
from blocks_network.agent.task_state import terminal_for
from blocks_network.errors import ArtifactError, ClosedError, ConfigError
from blocks_network.types import AgentInstanceOptions
from blocks_network.workers import WorkerPool


def _noop(task: Any, ctx: Any) -> None:
    return None


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"agent_name": "acme-echo"}, "agent_name must use only letters"),
        ({"agent_name": ""}, "agent_name must use only letters"),
        ({"handler": None}, "needs handler="),
        ({"handler": 3}, "handler must be callable"),
        ({"concurrency": -1}, "concurrency must be an integer ≥ 0"),
        ({"concurrency": True}, "concurrency must be an integer ≥ 0"),
        ({"expected_instances": 1.5}, "expected_instances must be an integer ≥ 0"),
        ({"max_pending_backlog": -2}, "max_pending_backlog must be an integer ≥ 0"),
        ({"max_running_time_sec": 0}, "max_running_time_sec must be an integer ≥ 1"),
        ({"heartbeat_ms": 10}, "heartbeat_ms must be an integer ≥ 1000"),
        ({"listing": "secret"}, "listing must be one of"),
        ({"card": {}}, "card must be a non-empty dict"),
        ({"capabilities": "x"}, "capabilities must be a list of strings"),
        ({"tags": ["x"]}, "tags must be a list of"),
        ({"on_error": "log"}, "on_error must be callable"),
    ],
)
def test_option_validation(overrides: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"agent_name": "ok_agent", "handler": _noop}
    values.update(overrides)
    with pytest.raises(ConfigError, match=message):
        AgentInstanceOptions(**values).validate()


def test_valid_options_and_defaults() -> None:
    options = AgentInstanceOptions(agent_name="ok_agent", handler=_noop)
    options.validate()
    assert (options.concurrency, options.expected_instances) == (1, 1)
    AgentInstanceOptions(
        agent_name="ok_agent", on_start_task=lambda t, p: None, concurrency=0
    ).validate()


# --- terminals ------------------------------------------------------------------------------


def _terminal(**flags: bool) -> dict[str, Any]:
    values = {"cancelled": False, "expired": False, "terminated": False}
    values.update(flags)
    return terminal_for("t", protocol_version="2026-05-01", **values).to_wire()


def test_terminal_rules() -> None:
    assert _terminal()["state"] == "completed"
    assert _terminal(cancelled=True) == {
        "type": "terminal",
        "taskId": "t",
        "state": "canceled",
        "protocolVersion": "2026-05-01",
    }
    assert _terminal(cancelled=True, terminated=True)["reason"] == "terminated"
    expired = _terminal(cancelled=True, expired=True)
    assert (expired["state"], expired["completionReason"]) == ("completed", "duration_expired")
    shutdown = terminal_for(
        "t", cancelled=True, expired=False, terminated=False, protocol_version=None, shutdown=True
    )
    assert (shutdown.state, shutdown.reason) == ("canceled", "instance_shutdown")


# --- handler results ----------------------------------------------------------------------


def test_prepare_artifacts_accepts_the_documented_shapes() -> None:
    assert prepare_artifacts(None) == []
    assert prepare_artifacts({}) == []
    assert prepare_artifacts({"artifacts": None}) == []
    assert prepare_artifacts({"artifacts": []}) == []
    [extra] = prepare_artifacts({"artifacts": [{"data": "x"}], "note": "ignored"})
    assert (extra.data, extra.mime_type) == (b"x", None)
    [a, b] = prepare_artifacts(
        {
            "artifacts": [
                {"data": "é", "mimeType": "text/plain"},
                {"data": b"\x00", "file_name": "z", "output_id": "o"},
            ]
        }
    )
    assert (a.data, a.mime_type) == ("é".encode(), "text/plain")
    assert (b.data, b.file_name, b.output_id) == (b"\x00", "z", "o")


@pytest.mark.parametrize("result", [{"data": "x"}, {"data": "x", "mimeType": "text/plain"}])
def test_prepare_artifacts_refuses_a_dict_without_artifacts(result: dict[str, str]) -> None:
    with pytest.raises(ArtifactError) as refused:
        prepare_artifacts(result)
    assert str(refused.value).startswith('handler returned a dict without "artifacts" (keys: ')
    assert '{"artifacts": [{"data": ..., "mimeType": ...}]}' in str(refused.value)


def test_prepare_artifacts_rejects_oversized_data_before_uploading() -> None:
    with pytest.raises(ArtifactError, match=r"artifacts\[0\] is 26214401 bytes.*25 MiB"):
        prepare_artifacts({"artifacts": [{"data": bytes(26_214_401)}]})


# --- worker pool and scheduler -------------------------------------------------------------


def test_pool_never_exceeds_its_size_and_reuses_threads() -> None:
    pool = WorkerPool(2, name_prefix="blocks-unit")
    gate = threading.Event()
    running: list[int] = []
    peak: list[int] = [0]
    lock = threading.Lock()
    done = threading.Semaphore(0)

    def job() -> None:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        gate.wait(5)
        with lock:
            running.pop()
        done.release()

    for _ in range(6):
        pool.submit(job)
    time.sleep(0.05)  # let queued jobs pile up behind the two workers
    assert pool.thread_count == 2
    gate.set()
    for _ in range(6):
        assert done.acquire(timeout=5)
    for _ in range(20):
        pool.submit(done.release)
    for _ in range(20):
        assert done.acquire(timeout=5)
    assert pool.thread_count <= 2 and peak[0] == 2
    pool.close()
    pool.close()
    assert pool.thread_count == 0
    with pytest.raises(ClosedError):
        pool.submit(job)


def test_idle_workers_exit() -> None:
    pool = WorkerPool(4, name_prefix="blocks-unit", idle_timeout_s=0.05)
    finished = threading.Event()
    pool.submit(finished.set)
    assert finished.wait(5)
    deadline = time.monotonic() + 5
    while pool.thread_count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.thread_count == 0
    again = threading.Event()
    pool.submit(again.set)  # a new worker starts on demand
    assert again.wait(5)
    pool.close()


def test_scheduler_runs_in_deadline_order_and_honours_cancel() -> None:
    scheduler = Scheduler(name="blocks-unit-timer")
    order: list[str] = []
    done = threading.Event()
    now = time.monotonic()
    scheduler.call_at(now + 0.10, lambda: (order.append("late"), done.set()))
    scheduler.call_at(now + 0.02, lambda: order.append("early"))
    scheduler.call_at(now + 0.05, lambda: order.append("cancelled")).cancel()
    scheduler.call_at(now + 0.03, lambda: 1 / 0)  # a failing callback does not stop the thread
    assert done.wait(5)
    assert order == ["early", "late"]
    scheduler.close()
    scheduler.close()
    with pytest.raises(ClosedError):
        scheduler.call_later(0, lambda: None)


# --- environment knobs and logging -----------------------------------------------------------


def test_grace_from_env() -> None:
    assert grace_from_env({}) == 3.0
    assert grace_from_env({"AGENT_SHUTDOWN_GRACE_SEC": "0"}) == 0.0
    assert grace_from_env({"AGENT_SHUTDOWN_GRACE_SEC": "7.5"}) == 7.5
    assert grace_from_env({"AGENT_SHUTDOWN_GRACE_SEC": "-1"}) == 0.0
    assert grace_from_env({"AGENT_SHUTDOWN_GRACE_SEC": "soon"}) == 3.0


def test_log_levels() -> None:
    assert level_from_env({}) == logging.INFO
    assert level_from_env({"LOG_LEVEL": "warn"}) == logging.WARNING
    assert level_from_env({"LOG_LEVEL": "DEBUG"}) == logging.DEBUG
    assert level_from_env({"LOG_LEVEL": "error"}) == logging.ERROR
    assert level_from_env({"LOG_LEVEL": "chatty"}) == logging.INFO


def _record(
    level: int, msg: str, *args: Any, extra: dict[str, Any] | None = None, exc: Any = None
) -> logging.LogRecord:
    record = logging.LogRecord("blocks_network.agent.x", level, __file__, 1, msg, args, exc)
    for key, value in (extra or {}).items():
        setattr(record, key, value)
    return record


def test_json_line_shape() -> None:
    record = _record(logging.INFO, "task %s started", "t_1", extra=fields(taskId="t_1"))
    body = json.loads(AgentLogFormatter(context={"agent": "echo"}).format(record))
    millis = int(record.created * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    assert body == {
        "time": f"{stamp}.{millis % 1000:03d}Z",
        "ts": millis,
        "level": "info",
        "logger": "blocks_network.agent.x",
        "message": "task t_1 started",
        "taskId": "t_1",
        "agent": "echo",
    }
    warn = json.loads(AgentLogFormatter().format(_record(logging.WARNING, "w")))
    assert warn["level"] == "warn"


def test_text_line_shape() -> None:
    record = _record(
        logging.WARNING, "task %s refused", "t_1", extra=fields(taskId="t_1", error="full")
    )
    line = TextLogFormatter(context={"agent": "echo"}).format(record)
    clock = time.strftime("%H:%M:%S", time.localtime(record.created))
    # Fields the message already shows are not repeated; the context is for JSON only.
    assert (
        line
        == f"{clock}.{int(record.created * 1000) % 1000:03d} WARN  task t_1 refused  error=full"
    )


def _exc_info() -> Any:
    try:
        {"text": "x"}["txt"]
    except KeyError:
        return sys.exc_info()
    raise AssertionError("unreachable")


def test_exception_type_always_and_traceback_on_errors_or_in_debug() -> None:
    exc_info = _exc_info()
    error = json.loads(AgentLogFormatter().format(_record(logging.ERROR, "failed", exc=exc_info)))
    assert error["error"] == "KeyError: 'txt'"
    assert "Traceback" in error["traceback"] and "KeyError: 'txt'" in error["traceback"]
    warning = _record(logging.WARNING, "retrying", exc=exc_info)
    quiet = json.loads(AgentLogFormatter().format(warning))
    assert quiet["error"] == "KeyError: 'txt'" and "traceback" not in quiet
    loud = json.loads(AgentLogFormatter(include_traceback=True).format(warning))
    assert "KeyError: 'txt'" in loud["traceback"]


def test_text_exception_type_on_the_line_and_traceback_below_on_errors() -> None:
    exc_info = _exc_info()
    first, *rest = (
        TextLogFormatter().format(_record(logging.ERROR, "failed", exc=exc_info)).split("\n")
    )
    assert first.endswith("ERROR failed")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "KeyError: 'txt'"
    quiet = TextLogFormatter().format(_record(logging.WARNING, "retrying", exc=exc_info))
    assert quiet.endswith("WARN  retrying (KeyError: 'txt')") and "\n" not in quiet


def test_credentials_are_redacted_in_every_format() -> None:
    url = "http://h/v2/presence?uuid=AG-x&auth=qEF2+a/b==&pnsdk=P"
    record = _record(logging.DEBUG, "request to %s failed", url, extra=fields(h="Bearer bk_1"))
    for formatter in (AgentLogFormatter(), TextLogFormatter()):
        line = formatter.format(record)
        assert "qEF2" not in line and "bk_1" not in line
        assert "auth=[redacted]&pnsdk=P" in line and "Bearer [redacted]" in line


def test_format_from_env() -> None:
    assert format_from_env({}) == "text"
    assert format_from_env({"LOG_FORMAT": " JSON "}) == "json"
    assert format_from_env({"LOG_FORMAT": "yaml"}) == "text"


def test_handler_routes_warnings_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    handler = AgentLogHandler()
    handler.setFormatter(AgentLogFormatter())
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        handler.emit(_record(level, logging.getLevelName(level)))
    assert [json.loads(x)["level"] for x in out.getvalue().splitlines()] == ["debug", "info"]
    assert [json.loads(x)["level"] for x in err.getvalue().splitlines()] == ["warn", "error"]


def test_public_surface_is_pinned() -> None:
    import blocks_network.agent as agent
    import blocks_network.types as types

    assert agent.__all__ == [
        "AgentInstance",
        "AgentInstanceHandle",
        "AsyncTaskContext",
        "start_agent_instance",
        "start_agent_instance_async",
    ]
    assert types.__all__ == sorted(types.__all__)
    assert set(types.__all__) == {
        "AgentInstanceOptions",
        "AsyncHandler",
        "Handler",
        "StartTaskMessage",
        "SyncHandler",
        "TaskContext",
        "TaskServices",
    }


@pytest.mark.parametrize(
    ("origin", "tls", "env", "setting", "expected"),
    [
        ("127.0.0.1:8080", False, {}, None, True),  # the local network
        ("ps.pndsn.com", True, {}, None, False),  # the hosted edge
        ("127.0.0.1:8080", False, {"http_proxy": "http://proxy:3128"}, None, False),
        ("127.0.0.1:8080", False, {"http_proxy": "ftp://odd"}, None, False),
        ("127.0.0.1:8080", False, {"http_proxy": "http://p:1", "no_proxy": "127.0.0.1"}, "", True),
        ("ps.pndsn.com", True, {}, "1", True),
        ("127.0.0.1:8080", False, {}, "0", False),
    ],
)
def test_events_are_pipelined_by_default_only_to_a_plain_origin_without_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
    origin: str,
    tls: bool,
    env: dict[str, str],
    setting: str | None,
    expected: bool,
) -> None:
    from blocks_network.agent.realtime_http import pipelining_for
    from blocks_network.transport.pubnub_factory import RealtimeEndpoint

    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert pipelining_for(RealtimeEndpoint(origin=origin, ssl=tls), setting) is expected
