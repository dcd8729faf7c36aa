"""The async consumer's backend calls: authenticated JSON requests and JSON-RPC, on aiohttp.

The same requests and the same reading of answers as the sync :class:`BackendClient` and
:class:`RpcClient` (:class:`BackendRequests`, :func:`rpc_request`, :func:`rpc_result`): only
the sending differs. A refused token is refreshed through the client's one
:class:`ConsumerAuth` (single flight across both APIs and threads); the refresh is a rare
blocking call, so it runs on the client's blocking-call pool rather than on the event loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

from blocks_network.blocking_calls import BlockingRunner
from blocks_network.consumer.backend import BackendRequests, RejectionCheck
from blocks_network.consumer.rpc_client import rpc_request, rpc_result, token_refused
from blocks_network.errors import NetworkError
from blocks_network.protocol.constants import API_PATH_RPC, HTTP_TIMEOUT_S
from blocks_network.transport.async_http import AsyncHttpClient
from blocks_network.transport.http_client import HttpResponse

__all__ = ["AsyncBackendClient"]

logger = logging.getLogger(__name__)


class AsyncBackendClient(BackendRequests):
    """Sends JSON to ``base_url`` paths with the consumer's credentials, from one event loop."""

    def __init__(
        self, http: AsyncHttpClient, run: BlockingRunner, base_url: str, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(base_url, *args, **kwargs)
        self.http = http
        self._run = run

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        timeout: float = HTTP_TIMEOUT_S,
        rejected: RejectionCheck | None = None,
    ) -> HttpResponse:
        """As :meth:`BackendClient.request`: the response whatever its status, after one
        token refresh and retry when the token was refused."""
        url = self.base_url + path
        for attempt in (1, 2):
            token = self.auth.token if self.auth is not None else None
            try:
                response = await self.http.request(
                    method, url, json_body=json_body, headers=self.headers(token), timeout=timeout
                )
            except NetworkError as exc:
                raise self.unreachable(exc) from exc
            if not self.refused(response, rejected) or attempt == 2 or self.auth is None:
                return response
            logger.info("backend refused the token on %s %s; refreshing once", method, path)
            await self._run(functools.partial(self.auth.refresh_after_rejection, token))
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(
        self, method: str, params: Mapping[str, Any], *, timeout: float = HTTP_TIMEOUT_S
    ) -> Any:
        """As :meth:`RpcClient.call`: ``method``'s ``result``, or the same typed errors."""
        response = await self.request(
            "POST",
            API_PATH_RPC,
            json_body=rpc_request(method, params),
            timeout=timeout,
            rejected=token_refused,
        )
        return rpc_result(method, response)
