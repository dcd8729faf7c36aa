"""The handle ``start_agent_instance`` returns."""

from __future__ import annotations

from typing import Any

__all__ = ["AgentInstanceHandle"]


class AgentInstanceHandle(dict[str, Any]):
    """What ``start_agent_instance`` returns: a dict (``handle["stop"]()``) whose keys are also
    attributes (``handle.stop()``).

    Keys: ``stop(grace_s=None)``, ``agent_name``, ``instance_id``, ``task_client``,
    ``publish_terminal(task_id, event)``, ``fail_stream(stream_id, reason)``, ``pubnub`` (the
    control client), ``cdm_config`` (None with an external client) and ``wait(timeout=None)``
    (blocks until the instance stops; True if it did).
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
