"""The bridge from a stream reader's PubNub client: its listener and status descriptions."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pubnub.callbacks import SubscribeCallback

if TYPE_CHECKING:
    from .reader import StreamReader

__all__ = ["SubscriptionListener", "status_text"]

logger = logging.getLogger(__name__)


class SubscriptionListener(SubscribeCallback):  # type: ignore[misc]
    """Forwards the client's callbacks; must never raise (it would kill the client's worker)."""

    def __init__(self, reader: StreamReader) -> None:
        self._reader = reader

    def status(self, pubnub: Any, status: Any) -> None:
        try:
            self._reader.on_status(status)
        except Exception:
            logger.exception("stream %s: status handling failed", self._reader.stream_id)

    def message(self, pubnub: Any, message: Any) -> None:
        try:
            self._reader.accept(
                message.message,
                channel=message.channel,
                publisher=message.publisher,
                timetoken=message.timetoken,
                meta=message.user_metadata,
            )
        except Exception:
            logger.exception("stream %s: frame handling failed", self._reader.stream_id)

    def presence(self, pubnub: Any, presence: Any) -> None:
        pass


def status_text(status: Any) -> str:
    """A one-line description of a PubNub status (its error text, else category and code)."""
    data = getattr(status, "error_data", None)
    if data is not None:
        info = getattr(data, "information", None) or getattr(data, "exception", None)
        if info:
            return str(info)
    code = getattr(status, "status_code", None)
    name = getattr(getattr(status, "category", None), "name", "unknown status")
    return f"{name}" + (f" (HTTP {code})" if code else "")
