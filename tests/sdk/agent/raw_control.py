"""Talking to an agent instance like the backend does, without the backend.

A secret-key client (fully privileged on the realtime API) publishes control messages on the
instance's control channel and watches task channels; write tokens are minted with the
network's own grant helper, exactly as the task service mints them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pubnub.enums import PNStatusCategory
from pubnub.pubnub import PubNub

from blocks_devnet.backend import grants
from blocks_devnet.network import LocalNetwork
from blocks_devnet.realtime.access_tokens import READ, TokenGrant, issue_token
from blocks_network.protocol.channels import control_channel, task_channel
from blocks_network.protocol.control import broadcast_control_meta, targeted_control_meta
from tests.support.pubnub_clients import RecordingListener, make_config

WAIT_S = 10.0


class RawControl:
    """Backend-like access to one agent instance on one keyset of ``network``."""

    def __init__(
        self,
        network: LocalNetwork,
        agent_name: str,
        instance_id: str,
        environment: str = "playground",
    ) -> None:
        self.network = network
        self.instance_id = instance_id
        self.agent_name = agent_name
        record = network.call(lambda: network.context.registry.get(agent_name))
        assert record is not None, f"agent {agent_name} is not registered"
        self.agent_id = record.agent_id
        self.keyset = network.keysets[environment]
        self.channel = control_channel(self.agent_id)
        self.client = PubNub(make_config(network.origin, self.keyset, "test-backend", secret=True))
        self._clients: list[PubNub] = [self.client]

    def close(self) -> None:
        """Stop every client this helper created."""
        for client in self._clients:
            client.stop()

    def publish(self, message: Any, *, broadcast: bool = False, meta: Any = "targeted") -> None:
        """Publish ``message`` on the control channel (targeted at the instance by default)."""
        if meta == "targeted":
            meta = (
                broadcast_control_meta() if broadcast else targeted_control_meta(self.instance_id)
            )
        builder = self.client.publish().channel(self.channel).message(message).should_store(False)
        if meta is not None:
            builder = builder.meta(meta)
        builder.sync()

    def control_token(self, ttl_minutes: int | None = None) -> str:
        """A control-channel token for the instance (another ``ttl_minutes`` → another token)."""
        if ttl_minutes is None:
            return grants.control_token(self.keyset, self.agent_id, self.instance_id)
        grant = TokenGrant(
            issued_at=int(time.time()),
            ttl_minutes=ttl_minutes,
            channels={self.channel: READ},
            authorized_uuid=self.instance_id,
        )
        return issue_token(grant, self.keyset.secret_key)

    def write_token(self, org_id: str, task_id: str) -> str:
        return grants.task_write_token(self.keyset, org_id, task_id, self.instance_id)

    def start_task(
        self,
        task_id: str | None = None,
        *,
        org_id: str = "org_test",
        broadcast: bool = False,
        watch: bool = True,
        **fields: Any,
    ) -> tuple[str, RecordingListener | None]:
        """Publish a StartTask (with a minted write token); returns (task id, channel watcher)."""
        task_id = task_id or f"t_{uuid.uuid4().hex[:12]}"
        listener = self.watch(org_id, task_id) if watch else None
        message: dict[str, Any] = {
            "type": "StartTask",
            "protocolVersion": "2026-05-01",
            "taskId": task_id,
            "agentName": self.agent_name,
            "ownerId": "user_test",
            "orgId": org_id,
            "requestParts": [{"partId": "text", "text": "hi"}],
            "taskKind": "request",
            "hasStream": False,
            "writeToken": self.write_token(org_id, task_id),
        }
        message.update(fields)
        self.publish(message, broadcast=broadcast)
        return task_id, listener

    def watch(self, org_id: str, task_id: str) -> RecordingListener:
        """Subscribe to a task channel; events land in ``listener.messages``."""
        listener = RecordingListener()
        client = PubNub(
            make_config(self.network.origin, self.keyset, f"watch-{task_id}", secret=True)
        )
        self._clients.append(client)
        client.add_listener(listener)
        client.subscribe().channels([task_channel(org_id, task_id)]).execute()
        listener.wait_status(PNStatusCategory.PNConnectedCategory)
        return listener


def next_event(listener: RecordingListener, type_: str, timeout: float = WAIT_S) -> dict[str, Any]:
    """The next task-channel message of ``type_`` (others are skipped)."""
    while True:
        message = listener.messages.get(timeout=timeout)
        if isinstance(message.message, dict) and message.message.get("type") == type_:
            return dict(message.message)


def events_until_terminal(
    listener: RecordingListener, timeout: float = WAIT_S
) -> list[dict[str, Any]]:
    """Every task-channel message up to and including the terminal."""
    seen: list[dict[str, Any]] = []
    while True:
        message = listener.messages.get(timeout=timeout)
        if isinstance(message.message, dict):
            seen.append(dict(message.message))
            if message.message.get("type") == "terminal":
                return seen
