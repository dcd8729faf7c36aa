"""The seed README's consumer samples, run as written against a local network.

Each sample's code is kept verbatim in a string and executed with only BLOCKS_CDM_URL and
BLOCKS_API_KEY set. The only edits are placeholder URLs (``https://my-proxy.example.com``,
``https://my-auth-server``) pointed at a local token proxy, placeholder agent names and
task ids replaced by real ones, and helper functions the samples assume (``read_csrf_meta``…).
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks_devnet.network import LocalNetwork
from blocks_network import TaskClient
from blocks_network.protocol.constants import API_PATH_CONSUMER_TOKEN
from blocks_network.transport.http_client import HttpClient
from tests.sdk.consumer.responder import Responder
from tests.sdk.stub_server import Recorded, StubServer, stub_server


def run_sample(code: str, **names: Any) -> dict[str, Any]:
    """Execute a sample; returns its namespace. Clients it leaves open are destroyed."""
    namespace: dict[str, Any] = dict(names)
    try:
        exec(compile(textwrap.dedent(code), "<seed sample>", "exec"), namespace)
    finally:
        for value in list(namespace.values()):
            if isinstance(value, TaskClient):
                value.destroy()
    return namespace


@pytest.fixture
def proxy(network: LocalNetwork) -> Iterator[StubServer]:
    """Stands in for https://my-proxy.example.com/api/blocks-token and my-auth-server."""

    def respond(request: Recorded) -> tuple[int, Any]:
        http = HttpClient()
        try:
            body = http.request(
                "POST",
                network.url + API_PATH_CONSUMER_TOKEN,
                json_body={"apiKey": network.api_key},
            ).json()
        finally:
            http.close()
        return 200, {"token": body["accessToken"], "expiresIn": 60, "userId": body["userId"]}

    with stub_server(respond) as server:
        yield server


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_create_from_the_environment(blocks_env: dict[str, str]) -> None:
    ns = run_sample(
        """
        from blocks_network import RpcError, TaskClient

        client = TaskClient.create(billing_mode="free")
        user = client.get_user_id()
        """
    )
    assert ns["user"]


def test_mode_1_api_key(blocks_env: dict[str, str], agent: Responder) -> None:
    ns = run_sample(
        """
        import os
        from blocks_network import RpcError, TaskClient

        client = TaskClient.create(
            billing_mode="free",
            api_key=os.environ["BLOCKS_API_KEY"],
            on_auth_error=lambda err: print(f"Auth failed: {err}"),
        )
        """
    )
    assert ns["client"].billing_mode == "free"


def test_mode_2_token_endpoint_url(blocks_env: dict[str, str], proxy: StubServer) -> None:
    run_sample(
        """
        from blocks_network import RpcError, TaskClient

        client = TaskClient.create(
            billing_mode="free",
            token_endpoint="https://my-proxy.example.com/api/blocks-token",
        )
        """.replace("https://my-proxy.example.com", proxy.url)
    )
    assert proxy.requests[0].path == "/api/blocks-token"


def test_mode_2_token_endpoint_config(blocks_env: dict[str, str], proxy: StubServer) -> None:
    run_sample(
        """
        from blocks_network import TaskClient, TokenEndpointConfig

        token_endpoint: TokenEndpointConfig = {
            "url": "https://my-proxy.example.com/api/blocks-token",
            "headers": {
                "X-CSRF-Token": read_csrf_meta(),
                "Cookie": "session=abc123; role=user",   # cookie-auth parity (see note below)
            },
            "body": {"sessionId": current_session_id()},  # replaces the default {}
        }

        client = TaskClient.create(
            billing_mode="free",
            token_endpoint=token_endpoint,
        )
        """.replace("https://my-proxy.example.com", proxy.url),
        read_csrf_meta=lambda: "csrf-token-1",
        current_session_id=lambda: "session-7",
    )
    request = proxy.requests[0]
    assert request.headers["X-CSRF-Token"] == "csrf-token-1"
    assert request.headers["Cookie"] == "session=abc123; role=user"
    assert request.json() == {"sessionId": "session-7"}


def test_create_task_client_with_a_config(blocks_env: dict[str, str], proxy: StubServer) -> None:
    ns = run_sample(
        """
        from blocks_network import create_task_client, TokenEndpointConfig

        client = create_task_client(
            env="playground",
            token_endpoint={
                "url": "https://my-proxy.example.com/api/blocks-token",
                "headers": {"Cookie": f"session={session_id}"},
            },
        )
        """.replace("https://my-proxy.example.com", proxy.url),
        session_id="s-1",
    )
    assert ns["client"].billing_mode == "free"
    assert proxy.requests[0].headers["Cookie"] == "session=s-1"


def test_mode_3_token_provider(blocks_env: dict[str, str], proxy: StubServer) -> None:
    ns = run_sample(
        """
        import requests
        from blocks_network import TaskClient, TokenResult

        def get_token() -> TokenResult:
            resp = requests.post("https://my-auth-server/token")
            data = resp.json()
            return TokenResult(token=data["token"], expires_in=data["expiresIn"], user_id=data["userId"])

        client = TaskClient.create(
            billing_mode="free",
            token_provider=get_token,
        )
        user = client.get_user_id()
        """.replace("https://my-auth-server", proxy.url)
    )
    assert ns["user"]


def test_wait_for_terminal_sample(
    blocks_env: dict[str, str], agent: Responder, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sample(
        """
        from blocks_network import TaskClient, text_part

        with TaskClient.create(billing_mode="free", api_key=api_key) as client:
            session = client.send_message(
                agent_name="echo",
                request_parts=[text_part("Hello")],
            )
            with session:
                terminal = session.wait_for_terminal(timeout=30)
                print(terminal.state)  # "completed" | "failed" | ...
                session.save_artifacts("./output")
        """,
        api_key=blocks_env["BLOCKS_API_KEY"],
    )
    assert capsys.readouterr().out == "completed\n"
    [saved] = (in_tmp / "output").iterdir()
    assert saved.read_bytes() == b"Echoed request: Hello"


def test_artifact_and_on_error_samples(
    blocks_env: dict[str, str], agent: Responder, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = run_sample(
        """
        from blocks_network import ArtifactRef, DownloadedArtifact, TaskClient, text_part

        client = TaskClient.create(billing_mode="free")
        session = client.send_message(agent_name="echo", request_parts=[text_part("Hello")])
        session.wait_for_terminal(timeout=30)

        artifacts: list[ArtifactRef] = session.list_artifacts()

        ref = artifacts[0]
        result: DownloadedArtifact = session.download_artifact(ref)
        # result.data: bytes, result.mime_type: str, result.file_name: Optional[str]

        def handle_error(error, context):
            print(f"Error in {context.callback_type}: {error}")

        unsub = session.on_error(handle_error)
        session.on_terminal(lambda event: 1 / 0)
        unsub()
        """
    )
    assert ns["result"].data == b"Echoed request: Hello"
    assert ns["result"].mime_type == "text/plain"
    assert capsys.readouterr().out == "Error in onTerminal: division by zero\n"


def test_part_helpers_sample(blocks_env: dict[str, str], agent: Responder, in_tmp: Path) -> None:
    (in_tmp / "data.csv").write_text("a,b\n1,2\n")
    (in_tmp / "report.pdf").write_bytes(b"%PDF-1.4 tiny")
    ns = run_sample(
        """
        from pathlib import Path
        from blocks_network import text_part, file_part

        parts = [
            text_part("Hello"),

            # Raw bytes with metadata:
            file_part(b"\\x00\\x01\\x02", file_name="raw.bin"),

            # From a file path — read synchronously at call time:
            file_part("./data.csv", content_type="text/csv"),

            # From a pathlib.Path:
            file_part(Path("./report.pdf"), content_type="application/pdf"),
        ]

        session = client.send_message(agent_name="echo", request_parts=parts)
        terminal = session.wait_for_terminal(timeout=30)
        """,
        client=TaskClient.create(billing_mode="free"),
    )
    assert ns["terminal"].state == "completed"
    task = agent.tasks[ns["session"].task_id]
    names = [p.artifact_ref.file_name for p in task.request_parts if p.artifact_ref]
    assert names == ["raw.bin", "data.csv", "report.pdf"]


def test_connect_and_drain_window_samples(
    blocks_env: dict[str, str], agent: Responder, in_tmp: Path
) -> None:
    first = run_sample(
        """
        from blocks_network import TaskClient, text_part

        client = TaskClient.create(billing_mode="free")
        # Narrower window for fast-shutdown flows
        session = client.send_message(
            agent_name="llm_streamer",
            request_parts=[text_part("stream please")],
            drain_window_s=5.0,   # 5 seconds
        )
        session.wait_for_terminal(timeout=30)
        task_id = session.task_id
        """.replace("llm_streamer", "echo")
    )
    ns = run_sample(
        """
        from blocks_network import TaskClient, StreamUnavailableError

        client = TaskClient.create(billing_mode="free")
        session = client.connect(task_id="task-abc-123")

        # Wider window for long-tail consumers, or on connect()
        resumed = client.connect(
            task_id="task-abc",
            drain_window_s=60.0,  # 60 seconds
        )

        # Artifacts produced by the finished task are still available:
        artifacts = session.list_artifacts()
        session.save_artifacts("./recovered")
        """.replace("task-abc-123", first["task_id"]).replace("task-abc", first["task_id"])
    )
    assert ns["session"].state == "completed"
    assert ns["resumed"].drain_window_s == 60.0
    assert len(ns["artifacts"]) == 1
    assert [p.name for p in (in_tmp / "recovered").iterdir()] == ["artifact-0"]


def test_no_warning_noise_on_the_happy_path(
    blocks_env: dict[str, str], agent: Responder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="blocks_network"):
        run_sample(
            """
            from blocks_network import TaskClient, text_part

            with TaskClient.create(billing_mode="free") as client:
                with client.send_message(agent_name="echo", request_parts=[text_part("q")]) as s:
                    s.wait_for_terminal(timeout=30)
            """
        )
    assert [r.getMessage() for r in caplog.records] == []
