"""Keeps task records in step with what is published on task channels.

Registered as a message-log observer, it sees every publish (the agent's and the
backend's own) right after it is stored. ``progress`` with ``state:"running"`` marks the
task running; the first ``terminal`` finishes it (later ones are ignored, as consumers
ignore them). Everything else on the channel leaves the record alone, so the observer
costs one string check for the many messages that are not task events.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from blocks_devnet.backend.tasks.store import STATE_QUEUED, STATE_RUNNING
from blocks_network.protocol.channels import (
    parse_stream_channel,
    parse_task_channel,
    stream_channel,
    task_channel,
)
from blocks_network.protocol.constants import TASK_STATE_RUNNING
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.events import ProgressState, TerminalEvent, parse_task_event

if TYPE_CHECKING:
    from blocks_devnet.backend.tasks.service import TaskService

logger = logging.getLogger(__name__)

# A cheap pre-filter derived from the builder, so the pattern stays spelled in one place.
_TASK_CHANNEL_PREFIX = task_channel("o", "t").partition(".")[0] + "."
_WATCHED_TYPES = frozenset({ProgressState.TYPE, TerminalEvent.TYPE})
_STREAM_CHANNEL_PREFIX = stream_channel("a", "s").partition(".")[0] + "."


def is_stream_channel(channel: str) -> bool:
    """Whether ``channel`` is a Blocks stream channel (``stream.{agentName}.{streamId}``)."""
    return channel.startswith(_STREAM_CHANNEL_PREFIX) and parse_stream_channel(channel) is not None


class TaskChannelSync:
    """``observer(subscribe_key, channel, timetoken, message, meta, publisher)``."""

    def __init__(self, service: TaskService) -> None:
        self._service = service

    def __call__(
        self,
        subscribe_key: str,
        channel: str,
        timetoken: int,
        message: Any,
        meta: Any,
        publisher: str,
    ) -> None:
        if not channel.startswith(_TASK_CHANNEL_PREFIX) or not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind not in _WATCHED_TYPES:
            return
        if kind == ProgressState.TYPE and message.get("state") != TASK_STATE_RUNNING:
            return  # only the first "running" report changes the record
        parsed = parse_task_channel(channel)
        if parsed is None:
            return
        service = self._service
        record = service.store.get(parsed.task_id)
        if record is None or record.org_id != parsed.org_id or record.terminal:
            return
        if kind == ProgressState.TYPE and record.state in (STATE_RUNNING, STATE_QUEUED):
            return  # a queued task was handed to nobody (or taken back): no one starts it
        if service.subscribe_key_of(record.environment) != subscribe_key:
            return
        try:
            event = parse_task_event(message)
        except ProtocolError as exc:
            logger.debug("ignoring malformed event on %s: %s", channel, exc)
            return
        if event is None or event.task_id != record.task_id:
            return
        if isinstance(event, TerminalEvent):
            service.record_terminal(record, event)
        elif isinstance(event, ProgressState) and event.state == TASK_STATE_RUNNING:
            service.store.mark_running(record.task_id, service.now_ms())
