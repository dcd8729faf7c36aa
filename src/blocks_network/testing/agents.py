"""Running agent handlers inside the test process: :class:`AgentRunner`.

``runner.start(handler, agent_name=...)`` starts a real agent instance (the SDK runtime)
against a :class:`~blocks_network.testing.network.BlocksTestNetwork` and returns once the
instance is subscribed to its control channel and announced in presence: the start-up
contract of ``start_agent_instance``, so a task sent right after is taken without any sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blocks_network.agent.handle import AgentInstanceHandle
from blocks_network.agent.instance import AgentInstance
from blocks_network.errors import ClosedError
from blocks_network.testing.network import BlocksTestNetwork
from blocks_network.types import AgentInstanceOptions, Handler

__all__ = ["AgentRunner", "RunningAgent"]

logger = logging.getLogger(__name__)

#: How long a stopping instance lets running handlers finish (tests want it quick).
STOP_GRACE_S = 0.5


@dataclass
class RunningAgent:
    """An agent instance started by :class:`AgentRunner`.

    ``handle`` is what ``start_agent_instance`` returns (``publish_terminal``,
    ``fail_stream``, ``task_client``...); :meth:`stop` stops it (also done at teardown).
    """

    agent_name: str
    handle: AgentInstanceHandle
    record: dict[str, Any] | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def instance_id(self) -> str:
        return str(self.handle["instance_id"])

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop taking tasks, end running ones, leave presence; safe to call twice."""
        if not self._stopped:
            self._stopped = True
            self.handle["stop"](grace_s)


class AgentRunner:
    """Starts agent instances in-process against one test network; stops them all on
    :meth:`stop_all`. Thread-safe."""

    def __init__(self, network: BlocksTestNetwork) -> None:
        self.network = network
        self._lock = threading.Lock()
        self._agents: list[RunningAgent] = []
        self._closed = False

    def start(
        self,
        handler: Handler,
        agent_name: str,
        *,
        card: Mapping[str, Any] | None = None,
        concurrency: int = 1,
        billing_mode: str = "free",
        publish: bool | None = None,
        pricing: Mapping[str, Any] | None = None,
        listing: str | None = None,
        api_key: str | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> RunningAgent:
        """Start ``handler`` as an instance of ``agent_name``; blocks until it takes tasks.

        ``card`` is the agent card (a minimal one is built when omitted). With ``publish``
        (default: whenever a card is given) the card is first registered with
        ``billing_mode``/``pricing``/``listing``, as ``blocks publish`` would, so the network
        checks inputs and stream defaults against it; pass ``publish=False`` for an agent
        name another organisation owns (the built-in ``echo`` and ``adder``). ``api_key``
        runs the agent as another user (see ``create_user``); ``environ`` adds variables
        the instance reads (``ARTIFACT_INLINE_LIMIT_BYTES``, ``STREAM_*``...). Other
        keyword ``options`` are :class:`~blocks_network.types.AgentInstanceOptions` fields.

        Raises what ``start_agent_instance`` raises (ConfigError, BackendError...).
        """
        with self._lock:
            if self._closed:
                raise ClosedError("this agent runner is stopped")
        record = None
        if publish if publish is not None else card is not None:
            if card is None:
                raise ValueError("publish=True needs the agent card: pass card=...")
            record = self.network.publish(
                card, billing_mode=billing_mode, pricing=pricing, listing=listing, api_key=api_key
            )
        env = self.network.environ()
        env.update(environ or {})
        if api_key is not None:
            env["BLOCKS_API_KEY"] = api_key
        agent_options = AgentInstanceOptions(
            agent_name=agent_name,
            handler=handler,
            card=dict(card) if card is not None else None,
            concurrency=concurrency,
            **options,
        )
        # start() returns once subscribed and announced: the readiness signal.
        handle = AgentInstance(agent_options, environ=env).start()
        agent = RunningAgent(agent_name, handle, record)
        with self._lock:
            closed = self._closed
            if not closed:
                self._agents.append(agent)
        if closed:
            agent.stop()
            raise ClosedError("this agent runner was stopped while the agent started")
        logger.debug("test agent %s started (%s)", agent_name, agent.instance_id)
        return agent

    __call__ = start

    def stop_all(self) -> None:
        """Stop every agent started here (newest first); safe to call twice."""
        with self._lock:
            self._closed = True
            agents, self._agents = self._agents, []
        for agent in reversed(agents):
            try:
                agent.stop()
            except Exception:
                logger.warning("stopping test agent %s failed", agent.agent_name, exc_info=True)
