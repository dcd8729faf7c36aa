"""The agent registry over HTTP with an API key (protocol.md §5.7).

What ``blocks publish`` and ``blocks agents`` use, and how the testing kit publishes cards.
Reads send the key as an optional bearer (private agents of the key's organisation become
visible); writes need it. Any error status becomes a :class:`BackendError` whose message is
the backend's own sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from blocks_network.errors import ApiKeyInvalidError, BackendError, NetworkError
from blocks_network.protocol.constants import (
    API_PATH_REGISTRY_AGENTS,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_HEADER,
    WRITE_AFFINITY_HEADER,
)
from blocks_network.protocol.errors import API_KEY_INVALID
from blocks_network.transport.http_client import HttpClient, HttpResponse
from blocks_network.transport.write_affinity import PROCESS_WRITE_AFFINITY

__all__ = ["RegistryClient", "RegistryPage"]

logger = logging.getLogger(__name__)

_MAX_ERROR_TEXT = 300


@dataclass(frozen=True)
class RegistryPage:
    """One page of a registry listing: agent records (wire dicts), ``next`` cursor, total."""

    agents: list[dict[str, Any]]
    next: str | None
    total_count: int | None


def _error_text(response: HttpResponse) -> tuple[str, str | None]:
    body = response.json()
    if isinstance(body, Mapping):
        message = body.get("error") or body.get("message")
        code = body.get("code")
        if isinstance(message, str) and message:
            return message, code if isinstance(code, str) else None
    return response.text.strip()[:_MAX_ERROR_TEXT] or f"HTTP {response.status}", None


class RegistryClient:
    """Registry calls against ``base_url`` (the backend) with ``api_key``; thread-safe.

    Every method blocks for one HTTP round trip and raises NetworkError when the backend
    cannot be reached, BackendError (``status``, ``code``) when it refuses.
    """

    def __init__(self, base_url: str, api_key: str | None, *, http: HttpClient | None = None):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._own_http = http is None
        self._http = http or HttpClient()

    def close(self) -> None:
        """Release pooled connections (only those this client created); safe to call twice."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self, method: str, query: Mapping[str, Any] | None = None, body: Any = None
    ) -> HttpResponse:
        path = API_PATH_REGISTRY_AGENTS
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {PROTOCOL_VERSION_HEADER: PROTOCOL_VERSION, **PROCESS_WRITE_AFFINITY.header()}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            response = self._http.request(
                method, self.base_url + path, json_body=body, headers=headers
            )
        except NetworkError as exc:
            raise NetworkError(
                f"could not reach the Blocks registry at {self.base_url} "
                f"({exc.__cause__ or exc}); is the network running?"
            ) from exc
        PROCESS_WRITE_AFFINITY.observe(response.headers.get(WRITE_AFFINITY_HEADER.lower()))
        return response

    @staticmethod
    def _raise(response: HttpResponse, what: str) -> None:
        message, code = _error_text(response)
        if code == API_KEY_INVALID:
            raise ApiKeyInvalidError(message, status=response.status, code=code)
        raise BackendError(f"{what}: {message}", status=response.status, code=code)

    def get(self, agent_name: str) -> dict[str, Any] | None:
        """The agent's registry record, or None when no such agent is visible to the key."""
        response = self._request("GET", {"agentName": agent_name})
        if response.status == 404:
            return None
        body = response.json()
        if response.status != 200 or not isinstance(body, Mapping):
            self._raise(response, f"looking up agent {agent_name!r} failed")
        agent = body.get("agent")
        if not isinstance(agent, Mapping):
            raise BackendError(f"the registry answered an unexpected body for {agent_name!r}")
        return dict(agent)

    def list(
        self,
        *,
        tag: str | None = None,
        listing: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        full: bool = False,
    ) -> RegistryPage:
        """One page of agents visible to the key (public ones and the organisation's own)."""
        query = {
            "tag": tag,
            "listing": listing,
            "limit": limit,
            "cursor": cursor,
            "include": "full" if full else None,
        }
        response = self._request("GET", query)
        if response.status == 404:
            return RegistryPage([], None, 0)
        body = response.json()
        if response.status != 200 or not isinstance(body, Mapping):
            self._raise(response, "listing agents failed")
        agents = body.get("agents")
        if not isinstance(agents, list):
            raise BackendError("the registry answered an unexpected listing body")
        next_cursor = body.get("next")
        total = body.get("totalCount")
        return RegistryPage(
            [dict(a) for a in agents if isinstance(a, Mapping)],
            next_cursor if isinstance(next_cursor, str) and next_cursor else None,
            total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    def publish(
        self,
        card: Mapping[str, Any],
        *,
        billing_mode: str,
        pricing: Mapping[str, Any] | None = None,
        listing: str | None = None,
        card_ref: str | None = None,
        card_summary: Any = None,
    ) -> tuple[dict[str, Any], bool]:
        """Register or update the card's agent; returns ``(record, created)``.

        ``billing_mode`` is sent as given (the registry never derives it from pricing).
        Raises BackendError with the registry's sentence for a bad card, billing mode or
        pricing (400), a name owned by another organisation (403); ApiKeyInvalidError for a
        bad key (401).
        """
        body: dict[str, Any] = {"card": dict(card), "billingMode": billing_mode}
        optional = {
            "pricing": dict(pricing) if pricing else None,
            "listing": listing,
            "cardRef": card_ref,
            "cardSummary": card_summary,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        response = self._request("POST", body=body)
        reply = response.json()
        if response.status not in (200, 201) or not isinstance(reply, Mapping):
            self._raise(response, "publishing the agent failed")
        agent = reply.get("agent")
        if not isinstance(agent, Mapping):
            raise BackendError("the registry answered an unexpected body to the publish")
        logger.info("published agent %s", agent.get("agentName"))
        return dict(agent), response.status == 201
