"""The agent instance runtime: ``start_agent_instance`` runs a handler for an agent.

See docs/agent-runtime.md. Everything else in this package is private.
"""

from blocks_network.agent.async_context import AsyncTaskContext
from blocks_network.agent.handle import AgentInstanceHandle
from blocks_network.agent.instance import (
    AgentInstance,
    start_agent_instance,
    start_agent_instance_async,
)

__all__ = [
    "AgentInstance",
    "AgentInstanceHandle",
    "AsyncTaskContext",
    "start_agent_instance",
    "start_agent_instance_async",
]
