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

__all__ = ["fetch_history"]

logger = logging.getLogger(__name__)

#: A safety stop: 100,000 events is far beyond any task's history.
MAX_PAGES: Final = 1000


def fetch_history(
    pubnub: PubNub, channel: str, *, page_size: int = HISTORY_PAGE_SIZE
) -> list[tuple[int, Any]]:
    """Every stored message of ``channel`` as ``(timetoken, message)``, oldest first (blocking).

    Raises AuthError when the token does not grant read on the channel (expired or
    revoked), NetworkError for other failures.
    """
    collected: dict[int, Any] = {}
    start: int | None = None
    for _ in range(MAX_PAGES):
        request = pubnub.fetch_messages().channels([channel]).maximum_per_channel(page_size)
        if start is not None:
            request = request.start(start)
        try:
            envelope = request.sync()
        except PubNubException as exc:
            status = exc.get_status_code() if hasattr(exc, "get_status_code") else None
            if status == 403:
                raise AuthError(
                    f"reading the history of {channel} was denied: the task read token expired "
                    "or was revoked; connect to the task again",
                    status=403,
                ) from exc
            raise NetworkError(f"could not read the history of {channel}: {exc}") from exc
        items = (envelope.result.channels or {}).get(channel, []) if envelope.result else []
        page = [(int(item.timetoken), item.message) for item in items]
        collected.update(page)
        if len(page) < page_size:
            break
        start = min(tt for tt, _ in page)
    else:
        logger.warning("history of %s truncated after %d pages", channel, MAX_PAGES)
    return sorted(collected.items())
