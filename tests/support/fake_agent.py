"""A scriptable stand-in for an agent instance, for backend tests.

It does what the SDK's agent runtime does on the wire, and nothing more: connect over HTTP
with the API key, subscribe to the control channel with the control token and the
instance filter (``meta.instance == '<id>' || meta.broadcast == "true"``), announce its
presence state, and publish task events with each task's write token. Tests decide what it
answers: every control message lands in :attr:`FakeAgent.control`, and helpers publish
``progress``/``artifact``/``terminal`` for a StartTask.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from pubnub.enums import PNStatusCategory
from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.artifacts import InlineArtifactRef
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.constants import PROTOCOL_VERSION, TASK_STATE_COMPLETED
from blocks_network.protocol.control import (
    StartTask,
    control_filter_expression,
    parse_control_message,
)
from blocks_network.protocol.events import (
    ArtifactEvent,
    ProgressState,
    TerminalEvent,
    task_event_meta,
)
from blocks_network.protocol.ids import new_instance_id
from tests.support.backend_client import BackendClient
from tests.support.pubnub_clients import RecordingListener

WAIT_SECONDS = 10.0


class FakeAgent:
    """One connected, subscribed instance of ``agent_name`` (stop it with :meth:`stop`)."""

    def __init__(
        self,
        network: LocalNetwork,
        agent_name: str,
        *,
        api_key: str | None = None,
        billing_mode: str = "free",
        concurrency: int = 1,
        protocol_versions: list[str] | None = None,
        presence_timeout: int | None = None,
        **connect_extra: Any,
    ) -> None:
        self.network = network
        self.agent_name = agent_name
        self.instance_id = new_instance_id(agent_name)
        self.concurrency = concurrency
        self.protocol_versions = protocol_versions or [PROTOCOL_VERSION]
        self.active_tasks = 0
        http = BackendClient(network.url)
        try:
            reply = http.connect(
                api_key or network.api_key,
                agent_name,
                billing_mode,
                instanceId=self.instance_id,
                concurrency=concurrency,
                **connect_extra,
            )
        finally:
            http.close()
        assert reply.status == 201, reply.body
        self.connect_reply: dict[str, Any] = reply.body
        self.access_token: str = reply.body["accessToken"]
        self.agent_id: str = reply.body["agentId"]
        self.control_channel: str = reply.body["controlChannel"]
        self.environment: str = reply.body["environment"]
        keyset = network.keysets[self.environment]
        self.keyset = keyset
        self.pubnub = PubNub(self._config(presence_timeout))
        self.pubnub.set_token(reply.body["pamToken"])
        # Task events go through a second client (the SDK's per-task client): swapping tokens
        # on the control client would make its subscribe loop use a write token.
        self.publisher = PubNub(self._config(None))
        self._publish_lock = threading.Lock()
        self._stopped = False
        self._listener = RecordingListener()
        self.control: queue.Queue[Any] = self._listener.messages
        self.pubnub.add_listener(self._listener)
        self.pubnub.subscribe().channels([self.control_channel]).execute()
        self._listener.wait_status(PNStatusCategory.PNConnectedCategory)
        self.announce()

    def _config(self, presence_timeout: int | None) -> PNConfiguration:
        config = PNConfiguration()
        config.origin = self.network.origin
        config.ssl = False
        config.publish_key = self.keyset.publish_key
        config.subscribe_key = self.keyset.subscribe_key
        config.user_id = self.instance_id
        config.daemon = True
        config.filter_expression = control_filter_expression(self.instance_id)
        if presence_timeout is not None:
            config.set_presence_timeout(presence_timeout)
        return config

    # --- presence ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "instanceId": self.instance_id,
            "activeTasks": self.active_tasks,
            "concurrency": self.concurrency,
            "startedAt": int(time.time() * 1000),
            "activeStreams": 0,
            "preferredProtocolVersion": self.protocol_versions[0],
            "protocolVersions": self.protocol_versions,
        }

    def announce(self, active_tasks: int | None = None) -> None:
        """Set the presence state (``activeTasks`` defaults to the current count)."""
        if active_tasks is not None:
            self.active_tasks = active_tasks
        envelope = (
            self.pubnub.set_state().channels([self.control_channel]).state(self.state()).sync()
        )
        assert envelope.status.is_error() is False

    # --- control messages -------------------------------------------------------------------

    def next_control(self, timeout: float = WAIT_SECONDS) -> tuple[Any, Any]:
        """The next control message as ``(parsed message, pubnub meta)``."""
        received = self.control.get(timeout=timeout)
        return parse_control_message(received.message), received.user_metadata

    def next_start(self, timeout: float = WAIT_SECONDS) -> StartTask:
        message, meta = self.next_control(timeout)
        assert isinstance(message, StartTask), message
        assert meta == {"instance": self.instance_id}, meta
        return message

    def assert_no_control(self, timeout: float = 0.3) -> None:
        try:
            received = self.control.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected control message {received.message!r}")

    # --- task events ------------------------------------------------------------------------

    def publish(self, task: StartTask, event: dict[str, Any]) -> Any:
        """Publish ``event`` on the task's channel with its write token (store=true)."""
        channel = task_channel(task.resolved_org_id, task.task_id)
        return self.publish_on(
            task.write_token, channel, event, meta=task_event_meta(self.agent_name, task.task_id)
        )

    def publish_on(
        self, token: str | None, channel: str, message: Any, *, meta: Any = None, store: bool = True
    ) -> Any:
        """Publish with ``token`` (HTTP POST); raises PubNubException when refused."""
        assert token is not None
        with self._publish_lock:
            self.publisher.set_token(token)
            builder = self.publisher.publish().channel(channel).message(message).use_post(True)
            if meta is not None:
                builder = builder.meta(meta)
            return builder.should_store(store).sync()

    def start(self, task: StartTask) -> None:
        self.publish(task, ProgressState(task.task_id).to_wire())
        self.announce(self.active_tasks + 1)

    def finish(self, task: StartTask, state: str = TASK_STATE_COMPLETED, **extra: Any) -> None:
        self.publish(task, TerminalEvent(task.task_id, state, **extra).to_wire())
        self.announce(max(0, self.active_tasks - 1))

    def complete(self, task: StartTask, text: str = "done") -> None:
        """The default handler path: running, one inline artifact, terminal completed."""
        self.start(task)
        ref = InlineArtifactRef.from_bytes(text.encode(), mime_type="text/plain")
        self.publish(task, ArtifactEvent(task.task_id, ref).to_wire())
        self.finish(task)

    # --- lifecycle --------------------------------------------------------------------------

    def leave(self) -> None:
        """Leave presence for good: stop polling, then send the leave.

        Unsubscribing through the client races: a poll it starts just before the leave
        would reach the server after it and join again (a real rejoin, also on PubNub).
        """
        self._stopped = True
        # Empty the client's channel list first: its subscribe loop starts a new poll after
        # every answered one, even once stopped, unless it has no channel left to poll.
        with contextlib.suppress(Exception):
            self.pubnub.unsubscribe_all()
        self.pubnub.stop()
        query = urlencode({"uuid": self.instance_id, "auth": self.connect_reply["pamToken"]})
        url = (
            f"{self.network.url}/v2/presence/sub-key/{self.keyset.subscribe_key}"
            f"/channel/{quote(self.control_channel, safe='')}/leave?{query}"
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            with contextlib.suppress(Exception):
                self.pubnub.unsubscribe_all()
            self.pubnub.stop()
        self.publisher.stop()
