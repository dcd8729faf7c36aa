"""Small helpers for tests that send tasks: :func:`send_and_wait`, :func:`artifact_texts`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from blocks_network.consumer.parts import text_part
from blocks_network.consumer.task_client import TaskClient
from blocks_network.consumer.task_session import TaskSession

__all__ = ["artifact_json", "artifact_texts", "send_and_wait"]

#: Default wait for a task's terminal in tests (seconds).
DEFAULT_TIMEOUT_S = 30.0


def send_and_wait(
    client: TaskClient,
    agent: str,
    parts: str | Sequence[Any],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    **send_options: Any,
) -> TaskSession:
    """Send a task and block until it ends; returns its session (terminal, artifacts read).

    ``parts`` is a list of request parts, or a string sent as one ``text_part``.
    ``send_options`` go to ``client.send_message`` (``stream=``, ``task_kind=``...).
    Raises TimeoutError (with the task's state) when the task does not end within
    ``timeout``. The session belongs to the client: it is closed with it.
    """
    request = [text_part(parts)] if isinstance(parts, str) else list(parts)
    session = client.send_message(agent, request, **send_options)
    session.wait_for_terminal(timeout=timeout)
    return session


def artifact_texts(session: TaskSession) -> list[str]:
    """Every artifact of ``session`` decoded as UTF-8 text, in arrival order."""
    return [session.download_artifact(ref).data.decode("utf-8") for ref in session.list_artifacts()]


def artifact_json(session: TaskSession, index: int = 0) -> Any:
    """Artifact ``index`` of ``session`` parsed as JSON."""
    ref = session.list_artifacts()[index]
    return json.loads(session.download_artifact(ref).data)
