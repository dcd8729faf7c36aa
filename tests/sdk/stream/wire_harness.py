"""Streams over a real local network without the agent runtime or the consumer session.

A FakeAgent takes the task (so the test holds the StartTask and its write token); the agent
side is :class:`AgentStreams`, the consumer side a StreamRef opened through
``consumer_opener``. Used by the wire-level end-to-end tests and the benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from blocks_devnet.network import LocalNetwork
from blocks_network.protocol.cdm import Keyset
from blocks_network.protocol.control import StartTask
from blocks_network.protocol.stream_setup import StreamStarted
from blocks_network.stream import StreamDescriptor, StreamRef
from blocks_network.stream.context import AgentStreams, StreamTask
from blocks_network.stream.link import StreamLink
from blocks_network.stream.opening import consumer_opener
from blocks_network.transport.pubnub_factory import RealtimeEndpoint
from tests.support.fake_agent import FakeAgent
from tests.support.task_rpc import Consumer, register_agent


def pipe_card(streams: dict[str, Any] | None = None) -> dict[str, Any]:
    overrides: dict[str, Any] = {"capabilities": {"taskKinds": ["request", "pipe"]}}
    if streams:
        overrides["streams"] = streams
    return overrides


@dataclass
class WireTask:
    """One running task: the agent's view (``start``, ``streams``) and the consumer's."""

    network: LocalNetwork
    agent: FakeAgent
    consumer: Consumer
    result: dict[str, Any]
    start: StartTask
    streams: AgentStreams
    keyset: Keyset
    refs: dict[str, StreamRef] = field(default_factory=dict)
    terminal: list[str] = field(default_factory=list)
    link: StreamLink | None = None

    @property
    def task(self) -> StreamTask:
        return StreamTask(
            task_id=self.start.task_id,
            org_id=self.start.resolved_org_id,
            task_kind=self.start.task_kind,
            has_stream=self.start.has_stream,
            write_token=self.start.write_token,
            keyset=self.keyset,
            duration=self.start.duration,
            protocol_version=self.start.protocol_version,
        )

    def announced(self, stream_id: str, timeout: float = 10.0) -> StreamRef:
        """Wait for the ``stream_started`` of ``stream_id`` in the task's history."""
        deadline = time.monotonic() + timeout
        while stream_id not in self.refs:
            for message in self.consumer.history(self.result):
                if isinstance(message, dict) and message.get("streamEvent") == "stream_started":
                    started = StreamStarted.from_wire(message)
                    for sid, ann in started.streams.items():
                        if sid not in self.refs:
                            descriptor = StreamDescriptor.for_consumer(
                                started.task_id, sid, ann, started.declared_stream
                            )
                            self.refs[sid] = StreamRef(
                                descriptor,
                                opener=self.opener,
                                terminal_state=lambda: self.terminal[0] if self.terminal else None,
                            )
            if stream_id in self.refs:
                break
            assert time.monotonic() < deadline, f"stream {stream_id} never announced"
            time.sleep(0.02)
        return self.refs[stream_id]

    @property
    def opener(self) -> Any:
        if self.link is None:
            self.link = StreamLink(
                RealtimeEndpoint(self.network.origin, ssl=False),
                self.keyset,
                self.consumer.user_id,
            )
        return consumer_opener(self.link)

    def close(self) -> None:
        for ref in self.refs.values():
            if ref.client is not None:
                ref.client.close()
        self.streams.close()
        if self.link is not None:
            self.link.close()
        self.agent.stop()
        self.consumer.close()


def start_wire_task(
    network: LocalNetwork,
    agent_name: str,
    *,
    pipe: bool = True,
    streams: dict[str, Any] | None = None,
    stream: bool = True,
) -> WireTask:
    """Register ``agent_name``, connect a FakeAgent, send it a task; return the harness."""
    register_agent(network, agent_name, **pipe_card(streams))
    agent = FakeAgent(network, agent_name)
    consumer = Consumer(network)
    blocks: dict[str, Any] = {"stream": stream}
    if pipe:
        blocks.update(taskKind="pipe", duration=5)
    result = consumer.send(agent_name, extensions={"blocks": blocks})
    start = agent.next_start()
    agent.start(start)
    keyset = Keyset(agent.keyset.publish_key, agent.keyset.subscribe_key)
    card_streams = None
    if streams:
        from blocks_network.protocol.agent_card import CardStream

        card_streams = {
            name: CardStream(name, s["direction"], s["format"], s.get("affinity", "dedicated"))
            for name, s in streams.items()
        }
    agent_streams = AgentStreams(
        endpoint=RealtimeEndpoint(network.origin, ssl=False),
        agent_name=agent_name,
        instance_id=agent.instance_id,
        card_streams=card_streams,
        max_running_time_sec=30,
    )
    return WireTask(network, agent, consumer, result, start, agent_streams, keyset)
