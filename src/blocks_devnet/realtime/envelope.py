"""The subscribe envelope of a logged message (pubnub-wire.md §3.1), built as one string.

A message log serializes each message's envelope once and shares it with every subscriber;
the pieces that repeat (the keyset and channel, the publisher) are encoded once too.
"""

from __future__ import annotations

import json

#: The envelope's ``e`` of a plain message (left out of the envelope).
MESSAGE = 0


def build_envelope(
    *,
    subscribe_key: str,
    channel: str,
    timetoken: int,
    publisher: str,
    message_json: str,
    meta_json: str | None,
    message_type: int,
    custom_message_type: str | None,
) -> str:
    """The ``m[]`` entry of a subscribe response (pubnub-wire.md §3.1)."""
    return encode_envelope(
        json_string(publisher),
        timetoken,
        where_json(subscribe_key, channel),
        message_json,
        meta_json,
        message_type,
        custom_message_type,
    )


def where_json(subscribe_key: str, channel: str) -> str:
    """The envelope's ``"k"`` and ``"c"`` members, the same for every message of a log."""
    return f',"k":{json.dumps(subscribe_key)},"c":{json.dumps(channel)},"d":'


#: JSON-encoded publisher uuids: a handful of publishers send nearly every message.
_PUBLISHER_JSON: dict[str, str] = {}
_PUBLISHER_JSON_SIZE = 4096


def json_string(value: str) -> str:
    """``json.dumps(value)``, remembered for the few publishers that send most messages."""
    encoded = _PUBLISHER_JSON.get(value)
    if encoded is None:
        if len(_PUBLISHER_JSON) >= _PUBLISHER_JSON_SIZE:
            _PUBLISHER_JSON.clear()
        encoded = _PUBLISHER_JSON[value] = json.dumps(value)
    return encoded


def encode_envelope(
    publisher_json: str,
    timetoken: int,
    where: str,
    message_json: str,
    meta_json: str | None,
    message_type: int,
    custom_message_type: str | None,
) -> str:
    """:func:`build_envelope` from pre-encoded pieces (:func:`json_string`, :func:`where_json`)."""
    parts = ['{"a":"1","f":0,"i":', publisher_json, ',"p":{"t":"', str(timetoken), '","r":1}']
    parts += [where, message_json]
    if meta_json is not None:
        parts += [',"u":', meta_json]
    if message_type != MESSAGE:
        parts += [',"e":', str(message_type)]
    if custom_message_type:
        parts += [',"cmt":', json.dumps(custom_message_type)]
    parts.append("}")
    return "".join(parts)
