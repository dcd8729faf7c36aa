"""The agent instance runtime: ``start_agent_instance`` runs a handler for an agent.

See docs/agent-runtime.md. Everything else in this package is private.
"""

from blocks_network.agent.handle import AgentInstanceHandle
from blocks_network.agent.instance import start_agent_instance

__all__ = ["AgentInstanceHandle", "start_agent_instance"]
