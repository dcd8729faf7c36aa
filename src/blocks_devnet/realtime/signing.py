"""PubNub request signatures, computed exactly as the official client signs (no I/O).

A client configured with a secret key adds `timestamp` and `signature` to every request
(see `pubnub.utils.sign_request`):

* v2 (every request except POST /publish):
  `METHOD\\n{pub}\\n{path}\\n{params}\\n{body}`, HMAC-SHA256, base64url without `=`, prefix `v2.`.
* v1 (POST /publish): `{sub}\\n{pub}\\n{path}\\n{params}`, HMAC-SHA256, base64url with padding.

`{params}` is every query parameter except `signature`, sorted by key, as `k=v` joined with
`&`, each value percent-encoded with `quote(v, safe="")` and `~` as `%7E`. `{path}` is the
request path as received (still percent-encoded).

SDK quirk handled here: for a few parameters (`channel-group`, `filter-expr`, `state` on
subscribe/heartbeat, `custom_message_type`) the client signs a value it had already
percent-encoded, so it signs them encoded twice. `verify_signature` accepts either form for
those keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
from collections.abc import Mapping, Sequence
from urllib.parse import quote, unquote

logger = logging.getLogger(__name__)

# Keys whose value the SDK may have percent-encoded once before signing (see module docstring).
_PRE_ENCODED_KEYS = ("channel-group", "custom_message_type", "filter-expr", "state")


#: Query parameters whose `+` means a space (JSON values; see `parse_query_string`).
_FORM_ENCODED_KEYS = frozenset({"meta", "state"})


def parse_query_string(raw_query: str) -> list[tuple[str, str]]:
    """Split a raw query string into decoded (key, value) pairs, in order, as the SDK meant them.

    Splits each item on its first `=` (tokens end in `=` padding) and percent-decodes without
    turning `+` into a space: the SDK sends some values (uuid, auth) unencoded, so a `+` there
    is literal. The JSON-valued parameters (`meta`, `state`) are the exception: older clients
    form-encode them with `+` for a space, and the real service decodes them so (current
    clients send `%20` and `%2B`, which decode the same either way). Never raises.
    """
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        key = unquote(key)
        if key in _FORM_ENCODED_KEYS and "+" in value:
            value = value.replace("+", " ")
        pairs.append((key, unquote(value)))
    return pairs


def _encode_value(value: str) -> str:
    # Same output as the SDK's pam_encode: quote() with nothing safe, and `~` escaped too.
    return quote(value, safe="").replace("~", "%7E")


def _sdk_pre_encode(key: str, value: str) -> str:
    # The SDK's url_encode (per comma-separated item for channel-group) applied before signing.
    if key == "channel-group":
        return ",".join(quote(item, safe="~") for item in value.split(","))
    return quote(value, safe="~")


def _canonical_params(params: Mapping[str, str], pre_encoded: frozenset[str]) -> str:
    parts = []
    for key in sorted(params):
        value = params[key]
        if key in pre_encoded:
            value = _sdk_pre_encode(key, value)
        parts.append(f"{key}={_encode_value(value)}")
    return "&".join(parts)


def _is_v1(method: str, path: str) -> bool:
    return method.upper() == "POST" and path.startswith("/publish")


def _sign(
    *,
    method: str,
    path: str,
    params: str,
    body: str,
    publish_key: str,
    subscribe_key: str,
    secret_key: str,
) -> str:
    if _is_v1(method, path):
        signed_input = f"{subscribe_key}\n{publish_key}\n{path}\n{params}"
    else:
        signed_input = f"{method.upper()}\n{publish_key}\n{path}\n{params}\n{body}"
    digest = hmac.new(
        secret_key.encode("utf-8"), signed_input.encode("utf-8"), hashlib.sha256
    ).digest()
    signature = base64.urlsafe_b64encode(digest).decode("ascii")
    if _is_v1(method, path):
        return signature
    return "v2." + signature.rstrip("=")


def _path_only(raw_path: str) -> str:
    # aiohttp's `request.raw_path` carries the query string; the signed path does not.
    return raw_path.split("?", 1)[0]


def request_signature(
    *,
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    body: bytes,
    publish_key: str,
    subscribe_key: str,
    secret_key: str,
) -> str:
    """Return the `signature` value the official client sends for this request.

    `query` holds decoded pairs; a `signature` pair is ignored. `body` is the request body after
    any Content-Encoding is undone (only v2 signs it). Raises ValueError for duplicate keys or a
    non-UTF-8 body, which the SDK never sends.
    """
    params = _params(query)
    return _sign(
        method=method,
        path=_path_only(raw_path),
        params=_canonical_params(params, frozenset()),
        body=body.decode("utf-8"),
        publish_key=publish_key,
        subscribe_key=subscribe_key,
        secret_key=secret_key,
    )


def _params(query: Sequence[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in query:
        if key == "signature":
            continue
        if key in params:
            raise ValueError(f"query parameter {key!r} appears twice")
        params[key] = value
    return params


def verify_signature(
    *,
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    body: bytes,
    publish_key: str,
    subscribe_key: str,
    secret_key: str,
) -> bool:
    """Return True if the request carries the signature the official client would compute.

    `raw_path` is the path as received (percent-encoded; a trailing `?query` is ignored), `query`
    the decoded pairs in received order (see `parse_query_string`), `body` the raw body with any
    Content-Encoding undone. Requires exactly one `signature` and a `timestamp` (its age is not
    checked). Compares in constant time. Returns False on anything malformed; never raises.
    """
    try:
        received = [value for key, value in query if key == "signature"]
        params = _params(query)
        if len(received) != 1 or not params.get("timestamp", "").isdigit():
            return False
        path = _path_only(raw_path)
        text_body = body.decode("utf-8")
        toggles = [key for key in _PRE_ENCODED_KEYS if key in params]
        matched = False
        # At most 2**4 candidates; every one is computed so timing does not reveal which matched.
        for chosen in itertools.product((False, True), repeat=len(toggles)):
            pre_encoded = frozenset(key for key, on in zip(toggles, chosen, strict=True) if on)
            expected = _sign(
                method=method,
                path=path,
                params=_canonical_params(params, pre_encoded),
                body=text_body,
                publish_key=publish_key,
                subscribe_key=subscribe_key,
                secret_key=secret_key,
            )
            matched |= hmac.compare_digest(
                expected.encode("ascii"), received[0].encode("utf-8", "surrogatepass")
            )
        return matched
    except Exception:  # the contract is False, not an exception, for any malformed input
        logger.debug("unverifiable request signature for %s %r", method, raw_path, exc_info=True)
        return False
