"""The subscribe envelope of a logged message (pubnub-wire.md §3.1), built as one string.

A message log serializes each message's envelope once and shares it with every subscriber;
the pieces that repeat (the keyset and channel, the publisher) are encoded once too.

The members are the ones the real service sends (the official Python client's recorded
subscribe answers, pubnub/python tests/integrational/fixtures/asyncio/subscription/
sub_pub_unsub.yaml, join_leave.yaml and native_threads/subscribe/
subscribe_cg_publish_unsubscribe.json): a published message carries its publisher ``i`` and
sequence number ``s`` (the publish's ``seqn``, 1 when it sent none) and no ``b`` on a direct
subscription; a presence event carries neither ``i`` nor ``s``, and ``b`` naming its
``-pnpres`` channel; a message reached through a channel group has ``b`` naming the group.
"""

from __future__ import annotations

import json

#: The envelope's ``e`` of a plain message (left out of the envelope).
MESSAGE = 0
#: The ``s`` of a message whose publish sent no ``seqn`` (the real service's answer).
DEFAULT_SEQN = 1


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
    seqn: int | None,
) -> str:
    """The ``m[]`` entry of a published message in a subscribe response (pubnub-wire.md §3.1)."""
    return encode_envelope(
        json_string(publisher),
        timetoken,
        where_json(subscribe_key, channel),
        message_json,
        meta_json,
        message_type,
        custom_message_type,
        seqn=seqn,
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
    *,
    seqn: int | None = None,
    presence_channel: str | None = None,
) -> str:
    """:func:`build_envelope` from pre-encoded pieces (:func:`json_string`, :func:`where_json`).

    With ``presence_channel`` (a ``-pnpres`` channel) the envelope is a presence event's:
    no ``i`` nor ``s``, and ``b`` naming that channel.
    """
    if presence_channel is None:
        sequence = DEFAULT_SEQN if seqn is None else seqn
        parts = ['{"a":"1","f":0,"i":', publisher_json, ',"s":', str(sequence)]
        parts += [',"p":{"t":"', str(timetoken), '","r":1}', where, message_json]
    else:
        parts = ['{"a":"1","f":0,"p":{"t":"', str(timetoken), '","r":1}', where, message_json]
    if meta_json is not None:
        parts += [',"u":', meta_json]
    if message_type != MESSAGE:
        parts += [',"e":', str(message_type)]
    if custom_message_type:
        parts += [',"cmt":', json.dumps(custom_message_type)]
    if presence_channel is not None:
        parts.append(_match_member(presence_channel))
    parts.append("}")
    return "".join(parts)


def with_match(envelope: str, channel: str, group: str) -> str:
    """``envelope`` (of a message on ``channel``) with ``b`` naming the channel group that
    matched it; a presence event's own ``b`` (its channel, always last) gives way."""
    own = _match_member(channel) + "}"
    if envelope.endswith(own):
        envelope = envelope[: -len(own)] + "}"
    return f"{envelope[:-1]}{_match_member(group)}}}"


def _match_member(name: str) -> str:
    return f',"b":{json.dumps(name)}'
