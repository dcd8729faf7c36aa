"""Testing kit: a local network, in-process agents and helpers for pytest (docs/testing-kit.md).

::

    from blocks_network.testing import artifact_texts, send_and_wait

    def test_my_agent(run_agent, blocks_client):
        run_agent(my_handler, agent_name="my_agent")
        session = send_and_wait(blocks_client, "my_agent", "hello")
        assert artifact_texts(session) == ["HELLO"]

The fixtures (``blocks_network``, ``blocks_client``, ``run_agent``) come from the pytest
plugin :mod:`blocks_network.testing.plugin`, registered by installing the package. Names
are imported lazily so that loading the plugin imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blocks_network.testing.agents import AgentRunner, RunningAgent
    from blocks_network.testing.helpers import artifact_json, artifact_texts, send_and_wait
    from blocks_network.testing.network import BlocksTestNetwork

__all__ = [
    "AgentRunner",
    "BlocksTestNetwork",
    "RunningAgent",
    "artifact_json",
    "artifact_texts",
    "send_and_wait",
]

_HOMES = {
    "AgentRunner": "agents",
    "RunningAgent": "agents",
    "BlocksTestNetwork": "network",
    "artifact_json": "helpers",
    "artifact_texts": "helpers",
    "send_and_wait": "helpers",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
