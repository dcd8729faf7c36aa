"""The agent's side of the stream-setup handshake (protocol §8.2).

The agent publishes ``stream_setup`` on ``setup.{orgId}.{taskId}`` with the task's write token.
The server never accepts that publish: it answers HTTP 403 whose body carries the result (the
writer token on success, ``{code, message}`` on refusal). A publish that *succeeds* means no
stream-setup handler ran on the server, which is an error too.
"""

from __future__ import annotations

import json
import logging

from blocks_network.errors import NetworkError
from blocks_network.protocol.channels import setup_channel
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.stream_setup import (
    STREAM_SETUP_REJECTION_STATUS,
    StreamSetup,
    StreamSetupFailure,
    StreamSetupOk,
    parse_stream_setup_rejection,
)
from blocks_network.transport.http_client import HttpResponse
from blocks_network.transport.publisher import TokenPublisher

from .errors import StreamSetupError

__all__ = ["request_stream_setup"]

logger = logging.getLogger(__name__)


def request_stream_setup(
    publisher: TokenPublisher, setup: StreamSetup, *, write_token: str | None, user_id: str
) -> StreamSetupOk:
    """Run the handshake for ``setup`` as ``user_id`` (the instance id) and return the answer.

    Blocks for one round trip (up to 3 on network errors or 5xx). Raises StreamSetupError when
    the server refuses (``code`` is its error code), when the write token is refused, or when
    the publish is accepted (no stream-setup handler answered).
    """
    channel = setup_channel(setup.org_id, setup.task_id)
    body = json.dumps(setup.to_wire(), separators=(",", ":")).encode("utf-8")
    response = _publish_with_retries(publisher, channel, body, write_token, user_id)
    if response.status == 200:
        raise StreamSetupError(
            f"stream setup for {setup.stream_id}: did not receive expected 403 response; the "
            "realtime server has no stream-setup handler (is BLOCKS_CDM_URL a Blocks network?)",
            status=200,
        )
    if response.status != STREAM_SETUP_REJECTION_STATUS:
        raise StreamSetupError(
            f"stream setup for {setup.stream_id} failed: HTTP {response.status} "
            f"{response.text[:200]}",
            status=response.status,
        )
    try:
        result = parse_stream_setup_rejection(response.body)
    except ProtocolError as exc:
        raise StreamSetupError(
            f"stream setup for {setup.stream_id} was refused by access control (HTTP 403): the "
            f"task's write token is missing, expired or revoked ({exc})",
            status=403,
        ) from exc
    if isinstance(result, StreamSetupFailure):
        raise StreamSetupError(
            f"stream setup for {setup.stream_id} refused ({result.code}): {result.message}",
            status=403,
            code=result.code,
        )
    if result.stream_id != setup.stream_id:
        raise StreamSetupError(
            f"stream setup answered for stream {result.stream_id!r}, not {setup.stream_id!r}",
            status=403,
        )
    logger.debug("stream %s set up (phase %s)", setup.stream_id, result.phase)
    return result


def _publish_with_retries(
    publisher: TokenPublisher, channel: str, body: bytes, token: str | None, user_id: str
) -> HttpResponse:
    path = publisher.publish_path(channel, user_id=user_id, token=token, store=False)
    try:
        return publisher.post_with_retries(path, body)
    except NetworkError as exc:
        raise StreamSetupError(f"stream setup could not reach the realtime server: {exc}") from exc
