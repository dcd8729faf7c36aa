"""Valid requests to every backend route (and a stream-setup publish), for the fuzzer.

Each template's ``route`` names the ``(METHOD, canonical path)`` the router lists; the
identity they use is made fresh for every round by the test.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from blocks_network.protocol.constants import (
    API_PATH_AGENT_CONNECT,
    API_PATH_AGENT_REFRESH,
    API_PATH_ANON_TASK_READ_TOKEN,
    API_PATH_CONSUMER_TOKEN,
    API_PATH_FILES_CONFIRM_UPLOAD,
    API_PATH_FILES_REQUEST_UPLOAD,
    API_PATH_REGISTRY_AGENTS,
    API_PATH_RPC,
    API_PATH_TASK_READ_TOKEN,
    PROTOCOL_VERSION,
)
from tests.devnet.fuzz.dashboard_targets import dashboard_templates
from tests.devnet.fuzz.mutator import Template
from tests.devnet.fuzz.raw_http import RawRequest, segments
from tests.support.backend_client import make_card


@dataclass(frozen=True)
class BackendIdentity:
    """Credentials the backend templates use (all valid when the round starts)."""

    api_key: str
    consumer_jwt: str
    agent_jwt: str
    refresh_token: str
    task_id: str
    upload_id: str
    #: A streaming task's setup publish: path, the instance's query and the message.
    setup_path: str = "/publish/pub/sub/0/setup.org.task/0"
    setup_query: tuple[tuple[bytes, bytes | None], ...] = ()
    setup_message: object = None
    #: A dashboard session of the development user: its cookie and CSRF token.
    dashboard_cookie: str = ""
    dashboard_csrf: str = ""


def backend_templates(ids: BackendIdentity, credentials: tuple[bytes, ...]) -> list[Template]:
    """One valid request per backend route (several for the RPC methods)."""

    def t(
        route: tuple[str, str],
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: object = None,
        query: tuple[tuple[bytes, bytes | None], ...] = (),
        expect: tuple[int, ...] = (200,),
        rpc_result: bool = False,
    ) -> Template:
        headers: tuple[tuple[bytes, bytes], ...] = (
            (b"Content-Type", b"application/json"),
            (b"Blocks-Protocol-Version", PROTOCOL_VERSION.encode()),
        )
        if token is not None:
            headers += ((b"Authorization", b"Bearer " + token.encode()),)
        request = RawRequest(
            method=method.encode(),
            segments=segments(path),
            query=query,
            headers=headers,
            body=b"" if json_body is None else json.dumps(json_body).encode(),
        )
        return Template(
            route=route,
            request=request,
            json_body=json_body,
            credentials=credentials,
            expect=expect,
            rpc_result=rpc_result,
        )

    def rpc(method: str, params: object, *, result: bool = True) -> Template:
        body = {"jsonrpc": "2.0", "id": f"fz-{method}", "method": method, "params": params}
        return t(
            ("POST", API_PATH_RPC),
            "POST",
            API_PATH_RPC,
            token=ids.consumer_jwt,
            json_body=body,
            rpc_result=result,
        )

    registry = API_PATH_REGISTRY_AGENTS
    card = make_card("fuzz_reg")
    card["io"]["inputs"][0]["maxSizeBytes"] = 1000
    publish_body = {
        "card": card,
        "billingMode": "free",
        "listing": "public",
        "cardRef": "https://example.com/card.json",
        "cardSummary": {"tags": ["x"]},
    }
    paid_body = {
        "card": make_card("fuzz_paid"),
        "billingMode": "paid",
        "pricing": {"pricePerTask": 1, "pricePerMinute": 0.5, "currency": "USD"},
    }
    send_params = {
        "agentName": "fuzz_agent",
        "billingMode": "free",
        "requestParts": [{"partId": "text", "text": "hi"}],
        "ownerId": "",
        "idempotencyKey": "fz-1",
        "fingerprint": "fp-1",
        "extensions": {"blocks": {"taskKind": "request", "stream": False}},
    }
    setup = Template(
        route=("POST", "/publish/{tail}"),
        request=RawRequest(
            b"POST",
            segments(ids.setup_path),
            ids.setup_query,
            ((b"Content-Type", b"application/json"),),
            json.dumps(ids.setup_message).encode(),
        ),
        json_body=ids.setup_message,
        credentials=credentials,
        # The stream-setup hook answers even a success with a 403 (protocol.md §8.2).
        expect=(403,),
    )
    return [
        setup,
        t(("GET", "/config.json"), "GET", "/config.json"),
        t(("GET", "/api/v1/cdm"), "GET", "/api/v1/cdm"),
        t(
            ("POST", API_PATH_AGENT_CONNECT),
            "POST",
            API_PATH_AGENT_CONNECT,
            token=ids.api_key,
            expect=(201,),
            json_body={
                "agentName": "fuzz_conn",
                "instanceId": f"AG-fuzz_conn-{uuid.uuid4()}",
                "billingMode": "free",
                "listing": "public",
                "sdkLanguage": "Python",
                "sdkVersion": "0.1",
                "protocolVersions": [PROTOCOL_VERSION],
                "concurrency": 2,
                "expectedInstances": 1,
                "maxPendingBacklog": 3,
                "maxRunningTimeSec": 30,
            },
        ),
        t(
            ("POST", API_PATH_AGENT_REFRESH),
            "POST",
            API_PATH_AGENT_REFRESH,
            json_body={"refreshToken": ids.refresh_token},
        ),
        t(
            ("POST", API_PATH_CONSUMER_TOKEN),
            "POST",
            API_PATH_CONSUMER_TOKEN,
            json_body={"apiKey": ids.api_key},
        ),
        t(
            ("POST", API_PATH_TASK_READ_TOKEN),
            "POST",
            API_PATH_TASK_READ_TOKEN,
            token=ids.consumer_jwt,
            json_body={"taskId": ids.task_id, "role": "consumer"},
        ),
        t(
            ("POST", API_PATH_ANON_TASK_READ_TOKEN),
            "POST",
            API_PATH_ANON_TASK_READ_TOKEN,
            json_body={"taskId": ids.task_id, "fingerprint": "fp-1"},
        ),
        t(("GET", registry), "GET", registry, query=((b"agentName", b"echo"),)),
        t(
            ("GET", registry),
            "GET",
            registry,
            token=ids.consumer_jwt,
            query=(
                (b"include", b"full"),
                (b"tag", b"testing"),
                (b"listing", b"public"),
                (b"limit", b"2"),
                (b"cursor", b"ZWNobw"),
            ),
        ),
        t(
            ("POST", registry),
            "POST",
            registry,
            token=ids.api_key,
            json_body=publish_body,
            expect=(200, 201),
        ),
        t(
            ("PUT", registry),
            "PUT",
            registry,
            token=ids.consumer_jwt,
            json_body=paid_body,
            expect=(200, 201),
        ),
        t(
            ("DELETE", registry),
            "DELETE",
            registry,
            token=ids.api_key,
            query=((b"agentName", b"fuzz_paid"),),
        ),
        rpc("SendMessage", send_params),
        rpc("GetTask", {"taskId": ids.task_id}),
        rpc(
            "ListTasks",
            {"agentName": "fuzz_agent", "state": "failed", "limit": 5, "cursor": "WzEsImEiXQ"},
        ),
        t(
            ("POST", API_PATH_FILES_REQUEST_UPLOAD),
            "POST",
            API_PATH_FILES_REQUEST_UPLOAD,
            token=ids.consumer_jwt,
            json_body={
                "role": "consumer-input",
                "fileName": "input.txt",
                "fileSize": 10,
                "mimeType": "text/plain",
                "partId": "text",
                "agentName": "fuzz_agent",
            },
        ),
        t(
            ("POST", API_PATH_FILES_REQUEST_UPLOAD),
            "POST",
            API_PATH_FILES_REQUEST_UPLOAD,
            token=ids.agent_jwt,
            json_body={
                "role": "provider-output",
                "fileName": "out.bin",
                "fileSize": 10,
                "taskId": ids.task_id,
                "outputId": "result",
            },
        ),
        t(
            ("POST", API_PATH_FILES_CONFIRM_UPLOAD),
            "POST",
            API_PATH_FILES_CONFIRM_UPLOAD,
            token=ids.consumer_jwt,
            json_body={"uploadId": ids.upload_id},
        ),
        *dashboard_templates(
            ids.dashboard_cookie, ids.dashboard_csrf, ids.api_key, ids.task_id, "fuzz_agent"
        ),
        # Last: they move the task along, and the states after a cancel refuse some.
        rpc("CancelTask", {"taskId": ids.task_id, "reason": "fuzz"}),
        rpc("PauseTask", {"taskId": ids.task_id}, result=False),
        rpc("ResumeTask", {"taskId": ids.task_id}, result=False),
        rpc("RetryTask", {"taskId": ids.task_id}, result=False),
        rpc("TerminateTask", {"taskId": ids.task_id}, result=False),
    ]
