"""Task-channel history from PubNub storage (§4.4): newest first, 100 per page, then sorted.

The first page is the newest 100 messages; while a page is full, the next one asks for
messages before that page's oldest timetoken. The result is oldest first.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from pubnub.exceptions import PubNubException
from pubnub.pubnub import PubNub

from blocks_network.errors import AuthError, NetworkError
from blocks_network.protocol.constants import HISTORY_PAGE_SIZE

__all__ = ["HistoryPages", "fetch_history"]

logger = logging.getLogger(__name__)

#: A safety stop: 100,000 events is far beyond any task's history.
MAX_PAGES: Final = 1000


class HistoryPages:
    """The paging both readers (this module's, and the async client's over aiohttp) follow:
    feed each page to :meth:`take` while it asks for the next, from :attr:`start`."""

    def __init__(self, channel: str, page_size: int = HISTORY_PAGE_SIZE) -> None:
        self.channel = channel
        self.page_size = page_size
        #: ``start`` of the next request (messages before it); None for the newest page.
        self.start: int | None = None
        self._collected: dict[int, Any] = {}
        self._pages = 0

    def take(self, page: list[tuple[int, Any]]) -> bool:
        """Keep ``page`` (``(timetoken, message)``); True while another page is needed."""
        self._collected.update(page)
        self._pages += 1
        if len(page) < self.page_size:
            return False
        if self._pages >= MAX_PAGES:
            logger.warning("history of %s truncated after %d pages", self.channel, MAX_PAGES)
            return False
        self.start = min(tt for tt, _ in page)
        return True

    def messages(self) -> list[tuple[int, Any]]:
        """Every message kept, oldest first."""
        return sorted(self._collected.items())

    def denied(self) -> AuthError:
        """The error for a 403: the token does not grant read on the channel."""
        return AuthError(
            f"reading the history of {self.channel} was denied: the task read token expired "
            "or was revoked; connect to the task again",
            status=403,
        )

    def failed(self, cause: object) -> NetworkError:
        """The error for any other failure."""
        return NetworkError(f"could not read the history of {self.channel}: {cause}")


def fetch_history(
    pubnub: PubNub, channel: str, *, page_size: int = HISTORY_PAGE_SIZE
) -> list[tuple[int, Any]]:
    """Every stored message of ``channel`` as ``(timetoken, message)``, oldest first (blocking).

    Raises AuthError when the token does not grant read on the channel (expired or
    revoked), NetworkError for other failures.
    """
    pages = HistoryPages(channel, page_size)
    while True:
        request = pubnub.fetch_messages().channels([channel]).maximum_per_channel(page_size)
        if pages.start is not None:
            request = request.start(pages.start)
        try:
            envelope = request.sync()
        except PubNubException as exc:
            status = exc.get_status_code() if hasattr(exc, "get_status_code") else None
            raise (pages.denied() if status == 403 else pages.failed(exc)) from exc
        items = (envelope.result.channels or {}).get(channel, []) if envelope.result else []
        if not pages.take([(int(item.timetoken), item.message) for item in items]):
            return pages.messages()
