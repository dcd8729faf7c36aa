"""Query strings of the PubNub requests the SDK sends without a client (pubnub-wire.md §0).

Every such request ends with the same identity: ``uuid``, ``pnsdk`` and, when held, the
token in ``auth``. Quoting a token byte by byte costs more than the rest of a small request,
and a session or task sends the same identity many times, so it is built once per
(user id, token) and kept in a small cache.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from pubnub.pubnub_core import PubNubCore

__all__ = ["PNSDK", "encode_params", "identity_query", "quoted"]

#: The ``pnsdk`` value the official client sends (its version constant).
PNSDK: Final = f"{PubNubCore.SDK_NAME}/{PubNubCore.SDK_VERSION}"
#: Tokens are base64 or base64url text; anything else is quoted so the query stays valid.
_PLAIN_TOKEN: Final = re.compile(r"[A-Za-z0-9\-_=+/.~]*")
_CACHE_SIZE: Final = 256


@functools.lru_cache(maxsize=_CACHE_SIZE)
def identity_query(user_id: str, token: str | None) -> str:
    """``uuid=…&pnsdk=…[&auth=…]``; the token goes unencoded, as the official client sends it."""
    query = f"uuid={quote(user_id, safe='')}&pnsdk={quote(PNSDK, safe='')}"
    if token:
        query += f"&auth={token if _PLAIN_TOKEN.fullmatch(token) else quote(token, safe='')}"
    return query


@functools.lru_cache(maxsize=_CACHE_SIZE)
def quoted(value: str) -> str:
    """``value`` percent-encoded for a query (a task's meta repeats on each of its publishes)."""
    return quote(value, safe="")


def encode_params(params: Mapping[str, str]) -> str:
    """``k=v&…`` with every key and value percent-encoded, in the mapping's order."""
    return "&".join(f"{quote(key, safe='')}={quoted(value)}" for key, value in params.items())
