"""Consumer examples against a local network: connect-consumer, file-consumer,
auth-consumer; and every consumer script's ``main()`` as a user would run it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from blocks_network import TaskClient
from blocks_network.testing import AgentRunner, BlocksTestNetwork

from .conftest import load, start_agent, start_example


def test_connect_to_an_active_then_a_finished_task(
    run_agent: AgentRunner, blocks_client: TaskClient
) -> None:
    start_example(run_agent, "stock-sim")
    consumer = load("connect-consumer", "consumer")
    active = consumer.reattach_active(blocks_client, interval_s=0.05)
    assert active["active"] is True
    assert active["history"][0] == "request"
    assert active["tick"]["symbol"] == "ACME"
    assert active["state"] == "canceled"
    finished = consumer.reattach_finished(blocks_client, active["taskId"])
    assert finished["terminal"] is True and finished["state"] == "canceled"
    assert finished["unavailableStreams"] == ["prices"]
    assert len(finished["artifacts"]) == 1


def test_connect_to_a_finished_echo_task(run_agent: AgentRunner, blocks_client: TaskClient) -> None:
    start_example(run_agent, "echo")
    consumer = load("connect-consumer", "consumer")
    finished = consumer.reattach_finished(blocks_client, consumer.finished_echo(blocks_client))
    assert finished == {
        "state": "completed",
        "terminal": True,
        "artifacts": ["Echoed request: remember me"],
        "unavailableStreams": [],
    }


@pytest.mark.parametrize(
    ("name", "data", "kinds"),
    [
        ("notes.txt", b"small text\n", ["inline", "inline"]),
        ("big.txt", b"a line of text\n" * 3000, ["file", "inline"]),  # 45 KB: uploaded both ways
        ("blob.bin", os.urandom(40_000), ["file", "inline"]),
    ],
)
def test_file_in_file_out(
    run_agent: AgentRunner,
    blocks_client: TaskClient,
    tmp_path: Path,
    name: str,
    data: bytes,
    kinds: list[str],
) -> None:
    start_example(run_agent, "file-consumer")
    source = tmp_path / name
    source.write_bytes(data)
    result = load("file-consumer", "consumer").run(blocks_client, source, tmp_path / "out")
    report = result["report"]
    assert report["size"] == len(data)
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["kinds"] == kinds
    produced = (tmp_path / "out" / f"{report['action']}-{name}").read_bytes()
    expected = data.upper() if name.endswith(".txt") else data[::-1]
    assert produced == expected


def test_auth_consumer_all_three_token_modes(
    run_agent: AgentRunner, blocks_network: BlocksTestNetwork
) -> None:
    start_example(run_agent, "echo")
    results = load("auth-consumer", "consumer").run(blocks_network.cdm_url, blocks_network.api_key)
    answers = {mode: results[mode][0] for mode in ("api_key", "token_endpoint", "token_provider")}
    assert answers == {
        "api_key": "Echoed request: mode 1: api key",
        "token_endpoint": "Echoed request: mode 2: token endpoint",
        "token_provider": "Echoed request: mode 3: token provider",
    }
    user_ids = {results[mode][1] for mode in answers}
    assert len(user_ids) == 1 and None not in user_ids  # the same user, whatever the mode
    assert results["proxy_calls"] >= 2  # once for the endpoint mode, once per provider call
    assert results["no_cookie"] == "AuthError"


# --- each consumer script as a user runs it: main() with only BLOCKS_CDM_URL/BLOCKS_API_KEY ---

MAINS = [
    # As its README runs them: the built-in agents.
    (
        "request-consumer",
        ["--handler echo", "--handler adder"],
        ["hello", "2", "40"],
        "echo: completed",
    ),
    ("stream-consumer", ["echo-stream"], ["echo_stream", "to", "be"], "task completed"),
    ("advanced-stream", ["advanced-stream"], ["a", "b"], "tokens:    a b"),
    ("stock-sim-consumer", ["stock-sim"], ["--ticks", "2", "--interval", "0.05"], "after"),
    ("bidi-chat", ["bidi-chat"], ["hi", "bye"], "agent: BYE"),
    ("chat-agent", ["chat-agent"], ["my name is Bo", "what is my name?"], "Your name is Bo."),
    ("lifecycle", ["lifecycle"], [], "same key:"),
    ("connect-consumer", ["stock-sim", "echo"], [], "a finished echo task"),
    ("file-consumer", ["file-consumer"], ["FILE", "--out", "OUT"], "upper-cased"),
    ("auth-consumer", ["echo"], [], "token_provider"),
]


@pytest.mark.parametrize(("folder", "agents", "argv", "expected"), MAINS, ids=[m[0] for m in MAINS])
def test_consumer_main(
    folder: str,
    agents: list[str],
    argv: list[str],
    expected: str,
    run_agent: AgentRunner,
    blocks_network: BlocksTestNetwork,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name in list(os.environ):
        if name.startswith("BLOCKS_"):
            monkeypatch.delenv(name)
    for key, value in blocks_network.env.items():
        monkeypatch.setenv(key, value)
    for agent in agents:
        start_agent(run_agent, agent)
    note = tmp_path / "note.txt"
    note.write_text("hello file\n")
    argv = [str(note) if a == "FILE" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert load(folder, "consumer").main(argv) == 0
    assert expected in capsys.readouterr().out
