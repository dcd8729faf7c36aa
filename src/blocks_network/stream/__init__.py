"""Live task streams (protocol §8): agent writers, consumer readers, bidirectional and shared.

- :class:`StreamClient`: an open stream from either side (``write``/``end``, ``inbound``,
  ``bytes()``, ``events()``, ``as_file()``, ``on_error``).
- :class:`StreamRef` and :class:`StreamDescriptor`: a consumer's handle on an announced stream.
- :class:`StreamError`: the payload of ``on_error`` callbacks (``category``, ``fatal``, ...).
- :class:`InboundFrame`: one in-order frame as received.

The agent runtime uses :class:`~blocks_network.stream.context.AgentStreams`; consumer sessions
use :func:`~blocks_network.stream.opening.consumer_opener` and
:func:`~blocks_network.stream.opening.drain_streams`.
"""

from .client import StreamClient, StreamInfo
from .descriptor import StreamDescriptor
from .errors import (
    FATAL_CATEGORIES,
    StreamClosedError,
    StreamError,
    StreamErrorCategory,
    StreamOptionsError,
    StreamSetupError,
)
from .frames import InboundFrame
from .ref import StreamRef

__all__ = [
    "FATAL_CATEGORIES",
    "InboundFrame",
    "StreamClient",
    "StreamClosedError",
    "StreamDescriptor",
    "StreamError",
    "StreamErrorCategory",
    "StreamInfo",
    "StreamOptionsError",
    "StreamRef",
    "StreamSetupError",
]
