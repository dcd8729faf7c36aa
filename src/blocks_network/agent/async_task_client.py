"""``ctx.task_client`` of an async handler: an :class:`AsyncTaskClient` on the handler loop.

It wraps the instance's embedded consumer client (:class:`.task_client_proxy.LazyTaskClient`,
the sync handlers' ``ctx.task_client``): same API key, billing mode, token refresh and poll
loop, created on first use. Only the aiohttp connections are its own; they are closed when
the instance stops, and the shared core is destroyed by the instance as for sync handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

from blocks_network.agent.task_client_proxy import LazyTaskClient
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.consumer.async_task_client import (
    AsyncTaskClient,
    AsyncTaskSession,
    _running_on,
)
from blocks_network.errors import ClosedError
from blocks_network.protocol.task_api import TaskInfo

__all__ = ["AgentAsyncTaskClient"]

logger = logging.getLogger(__name__)

#: On instance stop, how long to wait for the client's connections to close on the loop.
_CLOSE_TIMEOUT_S: Final = 5.0


class AgentAsyncTaskClient:
    """The awaitable consumer client all async handlers of one instance share; used on the
    handler loop. Methods and errors are :class:`AsyncTaskClient`'s."""

    def __init__(self, lazy: LazyTaskClient, calls: BlockingCalls) -> None:
        self._lazy = lazy
        self._calls = calls
        self._client: AsyncTaskClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def client(self) -> AsyncTaskClient:
        """The :class:`AsyncTaskClient` (the shared core is created on the blocking pool on
        first use; after a SwitchEnvironment, a client over the new core)."""
        if self._closed:
            raise ClosedError("the agent instance is stopped; its task_client is closed")
        core = self._lazy.current()
        if core is None:
            core = await self._calls.run(self._lazy.get)
        current = self._client
        if current is not None and current._core is core:
            return current
        # Checked again after the await above: the loop runs one handler at a time.
        self._client = AsyncTaskClient(core, owns_core=False, calls=self._calls)
        self._loop = asyncio.get_running_loop()
        if current is not None:
            await current.aclose()  # it wrapped the core of the previous billing mode
        return self._client

    async def send_message(
        self, agent_name: str, request_parts: Sequence[Any], **options: Any
    ) -> AsyncTaskSession:
        """As :meth:`AsyncTaskClient.send_message` (same options)."""
        client = await self.client()
        return await client.send_message(agent_name, request_parts, **options)

    async def connect(self, task_id: str, **options: Any) -> AsyncTaskSession:
        """As :meth:`AsyncTaskClient.connect` (same options)."""
        return await (await self.client()).connect(task_id, **options)

    async def get_task(self, task_id: str) -> TaskInfo:
        """As :meth:`AsyncTaskClient.get_task`."""
        return await (await self.client()).get_task(task_id)

    async def cancel_task(self, task_id: str) -> None:
        """As :meth:`AsyncTaskClient.cancel_task`."""
        await (await self.client()).cancel_task(task_id)

    async def terminate_task(self, task_id: str) -> None:
        """As :meth:`AsyncTaskClient.terminate_task`."""
        await (await self.client()).terminate_task(task_id)

    async def aclose(self) -> None:
        """No-op: the client belongs to the agent instance, which closes it on stop."""

    async def __aenter__(self) -> AgentAsyncTaskClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Leaving an ``async with`` block keeps the shared client open."""

    def close(self) -> None:
        """(instance stop, any thread) Close the client's connections on its loop; waits for
        that unless called on the loop itself. Idempotent."""
        self._closed = True
        client, loop = self._client, self._loop
        self._client = None
        if client is None or loop is None or loop.is_closed():
            return
        try:
            future = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
        except RuntimeError:
            return  # the loop closed meanwhile: its connections went with it
        if _running_on(loop):
            return  # a blocking stop on the loop: the close runs once it returns
        try:
            future.result(_CLOSE_TIMEOUT_S)
        except Exception as exc:  # closing is best effort at stop
            logger.debug("closing ctx.task_client's connections failed: %r", exc)
