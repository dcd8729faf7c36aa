"""The ``blocks_network`` pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

- ``blocks_network`` (session): a :class:`~blocks_network.testing.BlocksTestNetwork` on a
  free port with a temporary data directory; ``.url``, ``.cdm_url``, ``.api_key``, ``.env``,
  ``.client(billing_mode="free")``, ``.publish(card)``, ``.create_user(name)``.
- ``blocks_client`` (function): a free-mode ``TaskClient`` for that network, destroyed
  when the test ends.
- ``blocks_async_client`` (function): the same as an ``AsyncTaskClient``, for ``async def``
  tests marked ``@pytest.mark.anyio`` (anyio's pytest plugin, installed with httpx, runs
  them on asyncio; no pytest-asyncio needed).
- ``run_agent`` (function): ``run_agent(handler, agent_name=..., card=None, concurrency=1,
  ...)`` starts an agent instance in the test process, returns once it takes tasks, and
  stops it when the test ends.

Importing this module is cheap and does nothing: the network code is imported by the
fixtures, only in sessions that use them. Disable the plugin with ``-p no:blocks_network``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from blocks_network.consumer.async_task_client import AsyncTaskClient
    from blocks_network.consumer.task_client import TaskClient
    from blocks_network.testing.agents import AgentRunner
    from blocks_network.testing.network import BlocksTestNetwork


@pytest.fixture(scope="session")
def blocks_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlocksTestNetwork]:
    """A local Blocks Network for the whole test session (stopped at its end)."""
    from blocks_network.testing.network import BlocksTestNetwork

    with BlocksTestNetwork.start(tmp_path_factory.mktemp("blocks-network")) as network:
        yield network


@pytest.fixture
def blocks_client(blocks_network: BlocksTestNetwork) -> Iterator[TaskClient]:
    """A consumer ``TaskClient`` (billing mode free, the development key) for one test."""
    from blocks_network.consumer.task_client import TaskClient

    client = TaskClient.create("free", api_key=blocks_network.api_key, environ=blocks_network.env)
    try:
        yield client
    finally:
        client.destroy()


@pytest.fixture
async def blocks_async_client(blocks_network: BlocksTestNetwork) -> AsyncIterator[AsyncTaskClient]:
    """An ``AsyncTaskClient`` (billing mode free, the development key) for one async test."""
    from blocks_network.consumer.async_task_client import AsyncTaskClient

    client = await AsyncTaskClient.create(
        "free", api_key=blocks_network.api_key, environ=blocks_network.env
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def run_agent(blocks_network: BlocksTestNetwork) -> Iterator[AgentRunner]:
    """``run_agent(handler, agent_name=..., card=None, concurrency=1, ...)`` → RunningAgent.

    Each agent runs in this process against ``blocks_network`` and is stopped at teardown.
    """
    from blocks_network.testing.agents import AgentRunner

    runner = AgentRunner(blocks_network)
    try:
        yield runner
    finally:
        runner.stop_all()
