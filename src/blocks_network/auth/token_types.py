"""Shapes a consumer's own auth code hands to the SDK: token results and endpoint configs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeAlias, TypedDict

__all__ = ["TokenEndpointConfig", "TokenProvider", "TokenResult"]


class TokenResult(NamedTuple):
    """A consumer JWT: ``token``, its lifetime ``expires_in`` (seconds) and ``user_id``.

    ``user_id`` becomes the default ``owner_id`` of ``send_message`` and the value of
    ``TaskClient.get_user_id()``.
    """

    token: str
    expires_in: float
    user_id: str | None = None


class _TokenEndpointUrl(TypedDict):
    url: str


class TokenEndpointConfig(_TokenEndpointUrl, total=False):
    """A token endpoint with custom request details; only ``url`` is required.

    ``headers`` merge over the default ``Content-Type: application/json`` (yours win) and
    ``body`` (JSON-serialized) replaces the default ``{}``. The same request is used for the
    first token and every refresh. There is deliberately no ``credentials`` field: set a
    cookie with ``headers={"Cookie": ...}``.
    """

    headers: Mapping[str, str]
    body: Any


#: A function the SDK calls for the first token and before each expiry.
TokenProvider: TypeAlias = Callable[[], TokenResult]
