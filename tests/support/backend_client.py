"""A small HTTP client for the local network's backend API, for tests.

It speaks plain HTTP (httpx) exactly as the SDK would: JSON bodies, the protocol header,
bearer credentials. Every call returns a :class:`Reply` so tests can assert on status,
headers and the decoded body, including error bodies.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from blocks_network.protocol.constants import (
    API_PATH_AGENT_CONNECT,
    API_PATH_CONSUMER_TOKEN,
    API_PATH_REGISTRY_AGENTS,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
)

_UNSET: Any = object()


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: Any

    @property
    def code(self) -> str | None:
        """The wire error code of an error body."""
        return self.body.get("code") if isinstance(self.body, dict) else None


class BackendClient:
    """``client.post(path, json=..., token=...)`` against one local network."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=10.0)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _UNSET,
        raw: bytes | None = None,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        protocol: str | None = PROTOCOL_VERSION,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send a request; ``protocol=None`` leaves the protocol header out."""
        sent: dict[str, str] = {"Content-Type": "application/json"}
        if protocol is not None:
            sent[PROTOCOL_VERSION_HEADER] = protocol
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        content = (
            raw
            if raw is not None
            else (None if json_body is _UNSET else json.dumps(json_body).encode())
        )
        response = self._http.request(method, path, content=content, headers=sent, params=params)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return Reply(status=response.status_code, headers=response.headers, body=body)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = _UNSET, **kw: Any) -> Reply:
        return self.request("POST", path, json_body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    # --- common flows ---------------------------------------------------------------------

    def consumer_token(self, api_key: str) -> dict[str, Any]:
        reply = self.post(API_PATH_CONSUMER_TOKEN, {"apiKey": api_key}, protocol=None)
        assert reply.status == 200, reply.body
        return dict(reply.body)

    def publish(
        self,
        token: str,
        card: dict[str, Any],
        billing_mode: str = "free",
        *,
        expect: int | None = None,
        **extra: Any,
    ) -> Reply:
        reply = self.post(
            API_PATH_REGISTRY_AGENTS,
            {"card": card, "billingMode": billing_mode, **extra},
            token=token,
        )
        if expect is not None:
            assert reply.status == expect, reply.body
        return reply

    def connect(
        self, api_key: str, agent_name: str, billing_mode: str = "free", **extra: Any
    ) -> Reply:
        body = {
            "agentName": agent_name,
            "instanceId": f"AG-{agent_name}-{uuid.uuid4()}",
            "billingMode": billing_mode,
            "sdkLanguage": "Python",
            "protocolVersions": [PROTOCOL_VERSION],
            **extra,
        }
        return self.post(API_PATH_AGENT_CONNECT, body, token=api_key)

    def agent(self, agent_name: str, token: str | None = None) -> Reply:
        return self.get(API_PATH_REGISTRY_AGENTS, params={"agentName": agent_name}, token=token)


def make_card(agent_name: str, **overrides: Any) -> dict[str, Any]:
    """A valid request-only card; ``overrides`` replace top-level members."""
    card: dict[str, Any] = {
        "identity": {
            "agentName": agent_name,
            "displayName": agent_name.title(),
            "description": f"The {agent_name} test agent.",
            "version": "1.0.0",
            "provider": {"organization": "Tests"},
        },
        "capabilities": {"taskKinds": ["request"]},
        "io": {
            "inputs": [
                {
                    "id": "text",
                    "description": "Input.",
                    "contentType": "text/plain",
                    "required": True,
                }
            ],
            "outputs": [{"id": "result", "contentType": "text/plain", "guaranteed": True}],
        },
        "tags": [{"id": "testing", "name": "Testing"}],
        "runtime": {"handler": "./handler.py", "concurrency": 2, "maxRunningTimeSec": 30},
    }
    card.update(overrides)
    return card
