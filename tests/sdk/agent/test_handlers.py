"""The built-in handlers' exact behaviour (protocol §9.7), without a network."""

from __future__ import annotations

import json
from typing import Any

import pytest

from blocks_network.handlers.adder import MISSING_OPERANDS, adder_handler, find_operands
from blocks_network.handlers.echo import echo_handler
from blocks_network.types import StartTaskMessage


def _task(*parts: dict[str, Any]) -> StartTaskMessage:
    return StartTaskMessage(task_id="t_1", request_parts=list(parts))


def _single(result: dict[str, Any]) -> tuple[str, str]:
    [artifact] = result["artifacts"]
    return artifact["data"], artifact["mimeType"]


def test_echo_uses_the_first_part_with_text() -> None:
    task = _task(
        {"partId": "file", "contentType": "x"}, {"partId": "text", "text": "hi"}, {"text": "no"}
    )
    assert _single(echo_handler(task)) == ("Echoed request: hi", "text/plain")


def test_echo_keeps_empty_text() -> None:
    assert _single(echo_handler(_task({"partId": "text", "text": ""}))) == (
        "Echoed request: ",
        "text/plain",
    )


def test_echo_without_text_dumps_the_parts() -> None:
    parts = [{"partId": "data", "a": 1}]
    assert _single(echo_handler(_task(*parts)))[0] == "Echoed request: " + json.dumps(parts)
    assert _single(echo_handler(_task()))[0] == "Echoed request: []"


def _sum(result: dict[str, Any]) -> dict[str, Any]:
    data, mime = _single(result)
    assert mime == "application/json"
    assert data == json.dumps(json.loads(data), indent=2)  # 2-space indent, default separators
    return json.loads(data)  # type: ignore[no-any-return]


def test_adder_reads_json_text() -> None:
    out = _sum(adder_handler(_task({"partId": "text", "text": '{"a": 1, "b": 2}'})))
    assert out == {"ok": True, "a": 1, "b": 2, "sum": 3}
    data, _ = _single(adder_handler(_task({"text": '{"a": 1, "b": 2}'})))
    assert data == '{\n  "ok": true,\n  "a": 1,\n  "b": 2,\n  "sum": 3\n}'


def test_adder_reads_extra_keys_of_a_part_without_text() -> None:
    assert _sum(adder_handler(_task({"partId": "form", "a": 2.5, "b": -1})))["sum"] == 1.5


@pytest.mark.parametrize(
    "parts",
    [
        [{"text": '{"a": true, "b": 2}'}],
        [{"text": '{"a": "1", "b": 2}'}],
        [{"text": '{"a": 1}'}],
        [{"text": "[1, 2]"}],
        [{"text": "not json"}],
        [{"a": float("nan"), "b": 1}],
        [{"a": float("inf"), "b": 1}],
        [{"text": '{"kind": "math_mul", "a": 1, "b": 2}'}],
    ],
)
def test_adder_rejects_unusable_operands(parts: list[dict[str, Any]]) -> None:
    out = _sum(adder_handler(_task(*parts)))
    assert out["ok"] is False and out["error"] == MISSING_OPERANDS


def test_adder_failure_echoes_the_input_text() -> None:
    out = _sum(adder_handler(_task({"text": "two plus two"})))
    assert out == {"ok": False, "error": MISSING_OPERANDS, "input": "two plus two"}
    parts = [{"partId": "x", "c": 1}]
    assert _sum(adder_handler(_task(*parts)))["input"] == json.dumps(parts)


def test_adder_takes_the_first_usable_part_and_honours_kind() -> None:
    parts = [
        {"text": '{"kind": "other", "a": 100, "b": 100}'},
        {"text": "hello"},
        {"text": '{"kind": "math_add", "a": 3, "b": 4}'},
        {"text": '{"a": 5, "b": 6}'},
    ]
    assert find_operands(parts) == (3, 4)
