"""Stream status errors (:class:`StreamError`, a payload, not an exception) and stream exceptions.

A stream's subscribe loop reports each failed poll as a :class:`StreamError` handed to
``StreamClient.on_error`` callbacks; the categories are the ones the official PubNub client's
statuses map to (a lost connection is ``network_down``, a 400 ``bad_request``, a 403
``access_denied``, another status ``other``, an answer that is not a subscribe envelope
``malformed_response``). ``access_denied`` and
``bad_request`` are fatal: the stream is force-ended so its iterators finish (protocol §8.4).

Exceptions raised by stream operations, all rooted at :class:`~blocks_network.errors.BlocksError`::

    ConfigError
    └── StreamOptionsError        bad create_stream option, or streaming not negotiated
    BackendError
    └── StreamSetupError          the stream-setup handshake was refused or failed
    ClosedError
    └── StreamClosedError         write/open after the stream ended or was closed
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final, Literal

from blocks_network.errors import BackendError, ClosedError, ConfigError

__all__ = [
    "FATAL_CATEGORIES",
    "StreamClosedError",
    "StreamError",
    "StreamErrorCategory",
    "StreamOptionsError",
    "StreamSetupError",
    "is_error_category",
]

StreamErrorCategory = Literal[
    "connected",
    "reconnected",
    "network_down",
    "network_issues",
    "timeout",
    "malformed_response",
    "access_denied",
    "bad_request",
    "other",
]

#: Categories after which the grant is gone: retrying cannot help, so the stream ends.
FATAL_CATEGORIES: Final[frozenset[str]] = frozenset({"access_denied", "bad_request"})

_NOT_ERRORS: Final[frozenset[str]] = frozenset({"connected", "reconnected"})


def is_error_category(category: str) -> bool:
    """True for categories that fire ``on_error`` (everything but connected/reconnected)."""
    return category not in _NOT_ERRORS


@dataclass(frozen=True)
class StreamError:
    """One error of a stream's subscription.

    ``error`` is a human-readable description, ``channel`` the stream channel, ``timestamp``
    epoch milliseconds. ``fatal`` is true for ``access_denied`` and ``bad_request``: the stream
    has been force-ended and its iterators finish.
    """

    category: StreamErrorCategory
    error: str
    channel: str
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    fatal: bool = False

    @classmethod
    def create(cls, category: StreamErrorCategory, error: str, channel: str) -> StreamError:
        """Build an error whose ``fatal`` flag follows the category."""
        return cls(
            category=category, error=error, channel=channel, fatal=category in FATAL_CATEGORIES
        )


class StreamOptionsError(ConfigError):
    """A ``create_stream`` option is invalid or conflicts with the agent card, or the task did
    not negotiate streaming (the consumer must send the task with streaming enabled)."""


class StreamSetupError(BackendError):
    """The stream-setup handshake failed; ``code`` is the server's code (e.g. ``InvalidArgument``)."""


class StreamClosedError(ClosedError):
    """The stream has ended or was closed; open a new stream (stream data is live-only)."""
