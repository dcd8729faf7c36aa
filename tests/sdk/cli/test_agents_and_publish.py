"""``blocks publish`` (register, update, billing mode and pricing) and ``blocks agents``."""

from __future__ import annotations

import json
import shlex
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from blocks_network.testing import AgentRunner
from blocks_network.types import StartTaskMessage, TaskContext

from .conftest import Runner

WAIT_S = 15.0


def write_card(folder: Path, name: str, **changes: Any) -> Path:
    card: dict[str, Any] = {
        "identity": {
            "agentName": name,
            "displayName": "CLI test agent",
            "description": "Published by the CLI tests.",
            "version": "1.0.0",
            "provider": {"organization": "Tests"},
        },
        "capabilities": {"taskKinds": ["request"]},
        "io": {
            "inputs": [
                {
                    "id": "text",
                    "description": "Text.",
                    "contentType": "text/plain",
                    "required": True,
                }
            ],
            "outputs": [{"id": "result", "contentType": "text/plain", "guaranteed": True}],
        },
        "tags": [{"id": "cli_tests", "name": "CLI tests"}],
        "runtime": {"handler": "agent.py"},
    }
    card.update(changes)
    path = folder / "agent-card.json"
    path.write_text(json.dumps(card))
    return path


@pytest.fixture
def agent_name() -> str:
    return f"cli_{uuid.uuid4().hex[:10]}"


def test_publish_registers_then_updates(blocks: Runner, tmp_path: Path, agent_name: str) -> None:
    write_card(tmp_path, agent_name)
    first = blocks("publish")  # ./agent-card.json by default
    assert first.code == 0, first.err
    assert first.out.splitlines()[0] == (
        f"registered agent {agent_name}: billing free (no price), listing public"
    )
    again = blocks("publish", "agent-card.json", "--listing", "private")
    assert again.code == 0
    assert again.out.startswith(
        f"updated agent {agent_name}: billing free (no price), listing private"
    )

    record = json.loads(blocks("agents", "get", agent_name, "--json").out)
    assert record["listing"] == "private" and "runtime" not in record["card"]
    shown = blocks("agents", "get", agent_name)
    assert shown.out.startswith(f"agent        {agent_name}\n")
    assert '"agentName": "' + agent_name + '"' in shown.out


def test_paid_agents_need_a_price_and_get_their_billing_mode(
    blocks: Runner, tmp_path: Path, agent_name: str, run_agent: AgentRunner
) -> None:
    write_card(tmp_path, agent_name)
    unpriced = blocks("publish", "--billing-mode", "paid")
    assert unpriced.code == 1
    assert unpriced.err.startswith("blocks publish: [AgentRegistry] Request failed: ")
    assert "paid" in unpriced.err
    free_with_price = blocks("publish", "--price-per-task", "2")
    assert free_with_price.code == 1 and "free" in free_with_price.err

    priced = blocks("publish", "--billing-mode", "paid", "--price-per-task", "0.5")
    assert priced.code == 0, priced.err
    assert "billing paid (pricePerTask 0.5)" in priced.out
    row = next(
        line for line in blocks("agents", "list").out.splitlines() if line.startswith(agent_name)
    )
    assert row.split()[1:3] == ["paid", "0.5/task"]

    def answer(task: StartTaskMessage, ctx: TaskContext) -> dict[str, Any]:
        return {"artifacts": [{"data": "paid answer", "mimeType": "text/plain"}]}

    run_agent(answer, agent_name=agent_name)
    wrong_mode = blocks("send", agent_name, "hi")
    assert wrong_mode.code == 1
    assert wrong_mode.err.splitlines()[-1] == (
        "blocks send: the agent is registered with billing mode 'paid' but this command used "
        "'free': pass --billing-mode paid"
    )
    paid = blocks("send", agent_name, "hi", "--billing-mode", "paid")
    assert (paid.code, paid.out) == (0, "paid answer\n"), paid.err


def test_an_invalid_card_is_one_line_naming_the_field(
    blocks: Runner, tmp_path: Path, agent_name: str
) -> None:
    write_card(tmp_path, agent_name, capabilities={"taskKinds": []})
    result = blocks("publish")
    assert result.code == 2
    assert result.err.startswith("blocks publish: agent-card.json: capabilities.taskKinds")
    card = json.loads((tmp_path / "agent-card.json").read_text())
    card["capabilities"] = {"taskKinds": ["request"]}
    card["runtme"] = card.pop("runtime")
    (tmp_path / "agent-card.json").write_text(json.dumps(card))
    typo = blocks("publish")
    assert typo.code == 2
    assert typo.err.startswith(
        "blocks publish: agent-card.json: runtme: is not an agent card member; "
        "did you mean 'runtime'? valid ones: capabilities, extensions, identity, io, runtime, "
    )
    assert blocks("agents", "get", agent_name).code == 1  # nothing was published
    (tmp_path / "agent-card.json").write_text("{not json")
    assert "not valid JSON" in blocks("publish").err


def test_publishing_a_name_owned_by_another_organisation_is_refused(
    blocks: Runner, tmp_path: Path
) -> None:
    write_card(tmp_path, "echo")  # the network's built-in agent
    result = blocks("publish")
    assert result.code == 1
    assert "another organisation" in result.err


def test_agents_list_shows_the_builtins(blocks: Runner) -> None:
    result = blocks("agents", "list")
    assert result.code == 0
    names = [line.split()[0] for line in result.out.splitlines()[1:]]
    assert {"echo", "adder"} <= set(names)
    page = json.loads(blocks("agents", "list", "--limit", "1", "--json").out)
    assert len(page["agents"]) == 1 and page["next"]
    following = blocks("agents", "list", "--limit", "1", "--cursor", page["next"], "--json")
    assert json.loads(following.out)["agents"] != page["agents"]


def test_agents_get_unknown_exits_1(blocks: Runner) -> None:
    result = blocks("agents", "get", "no_such_agent_here")
    assert result.code == 1
    assert result.err.startswith("blocks agents get: no agent 'no_such_agent_here'")


def test_publish_hints_a_send_command_that_works_for_the_agent(
    blocks: Runner, tmp_path: Path, agent_name: str, run_agent: AgentRunner
) -> None:
    def hint() -> str:
        result = blocks("publish")
        assert result.code == 0, result.err
        prefix = "# next: blocks-run (in the card's folder), then: "
        assert result.out.splitlines()[1].startswith(prefix)
        return result.out.splitlines()[1].removeprefix(prefix)

    write_card(tmp_path, agent_name)
    assert hint() == f"blocks send {agent_name} hello"
    file_only = [{"id": "file", "description": "F.", "contentType": "text/plain", "required": True}]
    outputs = [{"id": "result", "contentType": "text/plain", "guaranteed": False}]
    write_card(tmp_path, agent_name, io={"inputs": file_only, "outputs": outputs})
    assert hint() == f"blocks send {agent_name} --file file=PATH"
    text = [{"id": "text", "description": "T.", "contentType": "text/plain", "required": False}]
    pipe = {"taskKinds": ["pipe"]}
    write_card(tmp_path, agent_name, capabilities=pipe, io={"inputs": text, "outputs": outputs})
    command = hint()
    assert command == f"blocks send {agent_name} --kind pipe --duration 1"  # text is optional

    run_agent(lambda task, ctx: None, agent_name=agent_name)
    sent = blocks(*shlex.split(command)[1:], "--no-wait")  # the hint, as typed
    assert sent.code == 0, sent.err
    assert json.loads(blocks("tasks", "get", sent.out.strip(), "--json").out)["taskKind"] == "pipe"
    assert blocks("tasks", "cancel", sent.out.strip(), "--terminate", "--wait").code == 0


def test_agents_get_and_list_show_online_instances_and_free_capacity(
    blocks: Runner, tmp_path: Path, agent_name: str, run_agent: AgentRunner
) -> None:
    write_card(tmp_path, agent_name, runtime={"handler": "agent.py", "concurrency": 2})
    assert blocks("publish").code == 0

    def online() -> str:
        shown = blocks("agents", "get", agent_name)
        assert shown.code == 0, shown.err
        return dict(line.split(None, 1) for line in shown.out.splitlines()[:7])["online"]

    def wait_online(expected: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while (seen := online()) != expected:
            assert time.monotonic() < deadline, f"online stayed {seen!r}, expected {expected!r}"
            time.sleep(0.05)

    assert online() == "0"
    release = threading.Event()

    def gated(task: StartTaskMessage, ctx: TaskContext) -> None:
        release.wait(WAIT_S)

    run_agent(gated, agent_name=agent_name, concurrency=2)
    try:
        wait_online("1 (2 free)")
        row = next(
            line.split()
            for line in blocks("agents", "list").out.splitlines()
            if line.startswith(agent_name + " ")
        )
        assert row[4:7] == ["1", "(2", "free)"]
        task_id = blocks("send", agent_name, "hi", "--no-wait").out.strip()
        wait_online("1 (1 free)")
        record = json.loads(blocks("agents", "get", agent_name, "--json").out)
        assert (record["onlineInstances"], record["freeSlots"]) == (1, 1)
    finally:
        release.set()
    assert blocks("watch", task_id).code == 0
