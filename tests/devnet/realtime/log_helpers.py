"""Appending plain text messages to a MessageLog, for the message-log tests."""

from __future__ import annotations

import json

from blocks_devnet.realtime.message_log import MessageLog


def append_text(
    log: MessageLog,
    subscribe_key: str,
    channel: str,
    text: str,
    *,
    store: bool = True,
    presence: bool = False,
) -> int:
    """Append ``text`` as a JSON string from publisher ``u``; returns its timetoken."""
    return log.append(
        subscribe_key=subscribe_key,
        channel=channel,
        publisher="u",
        message=text,
        message_json=json.dumps(text),
        store=store,
        presence=presence,
    )
