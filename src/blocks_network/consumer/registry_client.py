"""The agent registry over HTTP (protocol.md §5.7): the SDK's one registry client.

Used by the agent runtime (its own record at start-up, with the raw API key), by
``TaskClient.get_agent_card`` (with the consumer's token), by ``blocks publish`` and
``blocks agents`` and by the testing kit. Requests go through a
:class:`~blocks_network.consumer.backend.BackendClient` (headers, write affinity, one token
refresh on 401). Reads send the credential as an optional bearer (private agents of its
organisation become visible); writes need it. An error status becomes a
:class:`BackendError` ``[AgentRegistry] Request failed: <the backend's sentence>``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode

from blocks_network.consumer.backend import BackendClient
from blocks_network.errors import ApiKeyInvalidError, BackendError
from blocks_network.protocol.constants import API_PATH_REGISTRY_AGENTS
from blocks_network.protocol.errors import API_KEY_INVALID
from blocks_network.transport.http_client import HttpClient, HttpResponse

__all__ = ["RegistryClient", "RegistryPage"]

logger = logging.getLogger(__name__)

_MAX_ERROR_TEXT = 300
_FAILED = "[AgentRegistry] Request failed"


@dataclass(frozen=True)
class RegistryPage:
    """One page of a registry listing: agent records (wire dicts), ``next`` cursor, total."""

    agents: list[dict[str, Any]]
    next: str | None
    total_count: int | None


def _error_text(response: HttpResponse) -> tuple[str, str | None]:
    body = response.json()
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error")
        code = body.get("code")
        if isinstance(message, str) and message:
            return message, code if isinstance(code, str) else None
    return response.text.strip()[:_MAX_ERROR_TEXT] or f"HTTP {response.status}", None


def _raise(response: HttpResponse) -> NoReturn:
    message, code = _error_text(response)
    if code == API_KEY_INVALID:
        raise ApiKeyInvalidError(message, status=response.status, code=code)
    raise BackendError(f"{_FAILED}: {message}", status=response.status, code=code)


def _found(response: HttpResponse) -> Mapping[str, Any] | None:
    """The JSON object of a 200 answer, None for a 404 (§5.7); raises for anything else."""
    if response.status == 404:
        return None
    body = response.json()
    if response.status != 200 or not isinstance(body, Mapping):
        _raise(response)
    return body


class RegistryClient:
    """Registry calls through ``backend``; thread-safe.

    Every method blocks for one HTTP round trip (two after a refused token) and raises
    NetworkError when the backend cannot be reached, BackendError (``status``, ``code``)
    when it refuses.
    """

    def __init__(self, backend: BackendClient, *, own_http: bool = False) -> None:
        self._backend = backend
        self._own_http = own_http

    @classmethod
    def with_api_key(
        cls, base_url: str, api_key: str | None, *, http: HttpClient | None = None
    ) -> RegistryClient:
        """A client that sends the raw ``api_key`` (or nothing) as its bearer."""
        backend = BackendClient(http or HttpClient(), base_url, None, api_key=api_key)
        return cls(backend, own_http=http is None)

    @property
    def base_url(self) -> str:
        return self._backend.base_url

    def close(self) -> None:
        """Release pooled connections (only those this client created); safe to call twice."""
        if self._own_http:
            self._backend.http.close()

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
        return self._backend.request(method, path, json_body=body)

    def get(self, agent_name: str) -> dict[str, Any] | None:
        """The agent's registry record, or None when no such agent is visible to the bearer."""
        body = _found(self._request("GET", {"agentName": agent_name}))
        if body is None:
            return None
        agent = body.get("agent")
        if not isinstance(agent, Mapping):
            raise BackendError(f"{_FAILED}: unexpected body for {agent_name!r}")
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
        """One page of agents visible to the bearer (public ones and the organisation's own)."""
        query = {
            "tag": tag,
            "listing": listing,
            "limit": limit,
            "cursor": cursor,
            "include": "full" if full else None,
        }
        body = _found(self._request("GET", query))
        if body is None:
            return RegistryPage([], None, 0)
        agents = body.get("agents")
        if not isinstance(agents, list):
            raise BackendError(f"{_FAILED}: unexpected listing body")
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
            _raise(response)
        agent = reply.get("agent")
        if not isinstance(agent, Mapping):
            raise BackendError(f"{_FAILED}: unexpected body to the publish")
        logger.info("published agent %s", agent.get("agentName"))
        return dict(agent), response.status == 201
