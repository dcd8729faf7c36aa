"""What an async session reads from the realtime server besides its subscription, over
aiohttp: the task channel's history and file artifacts.

The requests are the official client's (pubnub-wire.md): history is ``fetch_messages`` v3
(``GET /v3/history/sub-key/{sub}/channel/{ch}?max=100[&start=tt]``, §5), a file is
``get_file_url``'s 307 followed to its ``Location`` (§6.2, §6.3); each ends with the
identity query the sync session's PubNub client sends (``uuid``, ``pnsdk``, the task read
token in ``auth``). The paging and the errors are the sync path's (:class:`HistoryPages`,
:func:`download_failed`); TLS and proxies are :class:`AsyncHttpClient`'s.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import quote, urljoin

from blocks_network.consumer.artifacts import DownloadedArtifact, download_failed, downloaded
from blocks_network.consumer.history import HistoryPages
from blocks_network.consumer.realtime import SessionRealtime
from blocks_network.errors import NetworkError
from blocks_network.protocol.artifacts import FileArtifactRef
from blocks_network.transport.async_http import AsyncHttpClient
from blocks_network.transport.pubnub_query import identity_query, quoted

__all__ = ["AsyncStorage"]

logger = logging.getLogger(__name__)

#: Redirects a file download follows (the sync transport's limit).
_MAX_REDIRECTS: Final = 5
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: One file GET, body included (a request's default 30 s is short for a large file).
FILE_TIMEOUT_S: Final = 300.0


class AsyncStorage:
    """History pages and file downloads of one async client's sessions, on its HTTP client."""

    def __init__(self, http: AsyncHttpClient) -> None:
        self._http = http

    async def history(
        self, realtime: SessionRealtime, channel: str, token: str | None
    ) -> list[tuple[int, Any]]:
        """Every stored message of ``channel`` as ``(timetoken, message)``, oldest first.

        Raises AuthError (403: the token expired or was revoked) or NetworkError, as
        :func:`~blocks_network.consumer.history.fetch_history`.
        """
        pages = HistoryPages(channel)
        path = f"/v3/history/sub-key/{quoted(realtime.subscribe_key)}/channel/{quoted(channel)}"
        while True:
            start = "" if pages.start is None else f"&start={pages.start}"
            query = f"max={pages.page_size}{start}&{_identity(realtime, token)}"
            try:
                response = await self._http.request("GET", f"{_origin(realtime)}{path}?{query}")
            except NetworkError as exc:
                raise pages.failed(exc) from exc
            if response.status == 403:
                raise pages.denied()
            try:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                items = response.json()["channels"].get(channel, [])
                page = [(int(item["timetoken"]), item["message"]) for item in items]
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise pages.failed(exc) from exc
            if not pages.take(page):
                return pages.messages()

    async def download(
        self, realtime: SessionRealtime, token: str | None, ref: FileArtifactRef
    ) -> DownloadedArtifact:
        """A file artifact's bytes; ArtifactError (as the sync download's) when it fails."""
        assert ref.file_name  # checked by inline_or_file()
        url = (
            f"{_origin(realtime)}/v1/files/{quoted(realtime.subscribe_key)}/channels/"
            f"{quoted(ref.channel)}/files/{_path_part(ref.file_id)}/{_path_part(ref.file_name)}"
            f"?{_identity(realtime, token)}"
        )
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                response = await self._http.request("GET", url, timeout=FILE_TIMEOUT_S)
            except NetworkError as exc:
                raise download_failed(ref, exc, None) from exc
            location = response.headers.get("location")
            if response.status in _REDIRECTS and location:
                # The Location carries its own authorisation; no auth is added (§6.3).
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise download_failed(ref, f"HTTP {response.status}", response.status)
            return downloaded(ref, response.body)
        raise download_failed(ref, f"more than {_MAX_REDIRECTS} redirects", None)


def _origin(realtime: SessionRealtime) -> str:
    endpoint = realtime.endpoint
    return f"{'https' if endpoint.ssl else 'http'}://{endpoint.origin}"


def _identity(realtime: SessionRealtime, token: str | None) -> str:
    # The user id the session's official client would send (one per TaskClient).
    return identity_query(realtime.user_id, token)


def _path_part(value: str) -> str:
    """A file id or name in the path: the official client sends them as they are, which
    only works for URL-safe text; anything else is percent-encoded so the request is valid."""
    return quote(value, safe="-._~!$&'()*+,;=:@")
