"""``start_agent_instance``: start-up, the running instance's parts, and stopping it.

Start-up order (protocol §9.1): validate options and card → instance id
``AG-{agentName}-{uuid4}`` → ``BLOCKS_API_KEY`` (checked before any network call) → CDM →
registry lookup (billing mode, listing) → connect (tokens, ``controlChannel``) → control
client subscribed with the instance filter → presence state. ``start_agent_instance``
returns once the instance is subscribed and announced, so a task sent right after it returns
is taken; every start-up failure raises (a typed ``BlocksError``) instead of leaving a silent
instance behind.

Resources are fixed per instance, whatever the number of tasks: one control client, one
HTTP connection pool (shared by publishes, presence and backend calls), one timer thread, one
presence thread, and at most ``concurrency`` handler threads (an ``async def`` handler: one
loop thread and a bounded blocking-call pool instead, see :mod:`.async_runner`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from pubnub.pubnub import PubNub

from blocks_network.agent.artifacts import ArtifactUploader
from blocks_network.agent.async_runner import AsyncTaskRunner, is_async_handler
from blocks_network.agent.async_task_client import AgentAsyncTaskClient
from blocks_network.agent.control import ControlHandler, ControlHooks
from blocks_network.agent.control_client import ControlClient, ControlEvents
from blocks_network.agent.credentials import TaskCredentials
from blocks_network.agent.handle import AgentInstanceHandle
from blocks_network.agent.handler_loop import HandlerLoop
from blocks_network.agent.logging import fields, install_agent_logging
from blocks_network.agent.presence import PresenceReporter, PresenceTarget
from blocks_network.agent.reachability import Reachability
from blocks_network.agent.realtime_http import ENV_PIPELINE_EVENTS, RealtimeHttp, pipelining_for
from blocks_network.agent.scheduler import Scheduler
from blocks_network.agent.shutdown import drain, grace_from_env
from blocks_network.agent.startup import (
    NetworkSettings,
    build_card,
    check_card,
    connect_agent,
    lookup_registry,
    require_api_key,
    resolve_network,
    scaling_limits,
)
from blocks_network.agent.task_client_proxy import LazyTaskClient
from blocks_network.agent.task_runner import RunnerConfig, TaskRunner
from blocks_network.auth.agent_auth import AgentAuth, ConnectResult, connect_payload
from blocks_network.blocking_calls import BlockingCalls
from blocks_network.config import environment_for, read_env
from blocks_network.errors import AuthError, ClosedError
from blocks_network.protocol.cdm import CdmConfig, Keyset
from blocks_network.protocol.constants import (
    BILLING_MODE_FREE,
    BILLING_MODES,
    ENV_CLI_VERSION,
    Environment,
)
from blocks_network.protocol.control import SwitchEnvironment
from blocks_network.protocol.ids import new_instance_id, task_client_user_id
from blocks_network.protocol.presence import InstancePresence
from blocks_network.stream.context import AgentStreams
from blocks_network.transport.http_client import HttpClient
from blocks_network.transport.pubnub_factory import create_pubnub
from blocks_network.transport.pubnub_http import use_pooled_requests
from blocks_network.types import AgentInstanceOptions
from blocks_network.workers import UNLIMITED_WORKERS, WorkerPool

__all__ = [
    "AgentInstance",
    "AgentInstanceHandle",
    "start_agent_instance",
    "start_agent_instance_async",
]

logger = logging.getLogger(__name__)

#: How long start-up waits for the control subscription to connect.
SUBSCRIBE_WAIT_S: Final = 15.0
#: After a drain, how long each worker thread still in a handler is waited for: the
#: handler ignored cancellation, its task is ended, and the (daemon) thread dies with the
#: process.
ABANDON_JOIN_S: Final = 0.1
#: How long each worker thread is waited for otherwise.
POOL_JOIN_S: Final = 5.0


class AgentInstance:
    """One running agent instance; use :func:`start_agent_instance`, or from async code
    ``async with AgentInstance(options) as handle:`` (async handlers then run on the
    caller's loop; see :func:`start_agent_instance_async`).

    ``loop``: the event loop async handlers run on (default: a thread of the instance's own).
    """

    def __init__(
        self,
        options: AgentInstanceOptions,
        environ: Mapping[str, str] | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._options = options
        self._loop = loop
        self._async: AsyncTaskRunner | None = None
        self._environ = dict(os.environ if environ is None else environ)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stop_now = threading.Event()
        self._abandoned = False
        self._stopping = False
        self._accepting = False
        self.instance_id = ""
        self._http: HttpClient | None = None
        self._publish_http: HttpClient | None = None
        self._scheduler: Scheduler | None = None
        self._pool: WorkerPool | None = None
        self._presence: PresenceReporter | None = None
        self._control: ControlClient | None = None
        self._task_client: LazyTaskClient | None = None
        self._network: NetworkSettings | None = None
        self._environment: Environment = "playground"
        self._billing_mode = BILLING_MODE_FREE
        self._control_channel = ""
        self._control_token: str | None = None
        self._started_at = 0
        self._runner: TaskRunner | None = None
        self._handler: ControlHandler | None = None
        self._auth: AgentAuth | None = None
        self._realtime: RealtimeHttp | None = None
        self._streams: AgentStreams | None = None
        self._denied = False
        self._max_running: int | None = None

    # --- start ---------------------------------------------------------------------------

    def start(self) -> AgentInstanceHandle:
        """Start; returns the handle. Raises ConfigError, NetworkError, BackendError/AuthError."""
        opts = self._options
        opts.validate()
        card = build_card(opts)
        validated = check_card(card, opts.agent_name)
        max_running, backlog = scaling_limits(opts, validated)
        self._max_running = max_running
        self.instance_id = opts.instance_id or new_instance_id(opts.agent_name)
        install_agent_logging(self._environ)
        env = read_env(self._environ)
        api_key = require_api_key(env)
        self._http = HttpClient()
        try:
            network = resolve_network(opts, env, self._http)
            self._network = network
            record = lookup_registry(self._http, network.base_url, api_key, opts.agent_name)
            listing = opts.listing or (record.listing if record else None)
            self._billing_mode = record.billing_mode if record else BILLING_MODE_FREE
            payload = connect_payload(
                agent_name=opts.agent_name,
                instance_id=self.instance_id,
                billing_mode=self._billing_mode,
                listing=listing,
                expected_instances=opts.expected_instances,
                concurrency=opts.concurrency,
                max_pending_backlog=backlog,
                max_running_time_sec=max_running,
                cli_version=self._environ.get(ENV_CLI_VERSION) or None,
            )
            self._auth = AgentAuth(
                self._http, network.base_url, api_key, payload, on_reconnect=self._on_reconnect
            )
            result = self._connect(record is None)
            self._build_runtime(network)
            self._streams = AgentStreams(
                endpoint=network.endpoint,
                agent_name=opts.agent_name,
                instance_id=self.instance_id,
                card_streams=validated.streams,
                max_running_time_sec=max_running,
                fail_stream=self.fail_stream,
                on_change=self._presence.mark_dirty if self._presence else None,
                env=self._environ,
            )
            assert self._runner is not None
            self._runner.streams = self._streams
            self._subscribe(network, result)
        except BaseException:
            self._teardown()
            raise
        self._accepting = True
        logger.info(
            "agent instance started",
            extra=fields(
                agentName=opts.agent_name,
                instanceId=self.instance_id,
                controlChannel=self._control_channel,
                environment=self._environment,
                concurrency=opts.concurrency,
            ),
        )
        return self._handle()

    def _connect(self, unregistered: bool) -> ConnectResult:
        assert self._auth is not None
        result = connect_agent(self._auth, self._options.agent_name, unregistered=unregistered)
        assert result.control_channel is not None
        mode = result.billing_mode if result.billing_mode in BILLING_MODES else None
        self._billing_mode = mode or self._billing_mode
        self._environment = environment_for(self._billing_mode)
        self._control_channel = result.control_channel
        self._control_token = result.pam_token or self._options.token
        return result

    def _build_runtime(self, network: NetworkSettings) -> None:
        opts = self._options
        assert self._http is not None
        self._started_at = int(time.time() * 1000)
        self._publish_http = HttpClient()
        realtime = RealtimeHttp(
            self._http,
            network.endpoint,
            self.instance_id,
            publish_http=self._publish_http,
            pipelining=pipelining_for(network.endpoint, self._environ.get(ENV_PIPELINE_EVENTS)),
            reachability=Reachability(network.endpoint.origin),
        )
        self._realtime = realtime
        self._scheduler = Scheduler()
        self._pool = WorkerPool(opts.concurrency or UNLIMITED_WORKERS)
        self._presence = PresenceReporter(realtime, self._presence_target)
        api_key = require_api_key(read_env(self._environ))
        self._task_client = LazyTaskClient(
            billing_mode=self._billing_mode,
            api_key=api_key,
            cdm_url=network.cdm_url,
            base_url=network.base_url,
            user_id=task_client_user_id(self.instance_id),
        )
        config = RunnerConfig(
            agent_name=opts.agent_name,
            instance_id=self.instance_id,
            handler=opts.handler,
            on_error=opts.on_error,
            inline_limit=read_env(self._environ).inline_limit_bytes,
            keyset_for=network.keyset,
            environment=lambda: self._environment,
            on_active_changed=self._on_active_changed,
            task_client=lambda: self._task_client,
            task_pubnub=self._task_pubnub,
            max_running_time_sec=self._max_running,
        )
        self._runner = TaskRunner(
            config,
            realtime=realtime,
            submit=self._pool.submit,
            scheduler=self._scheduler,
            uploader=ArtifactUploader(self._http, self._auth),
        )
        if opts.handler is not None and is_async_handler(opts.handler):
            # Coroutines on one loop instead of a thread per task (docs/async.md).
            calls = BlockingCalls()
            self._async = AsyncTaskRunner(
                self._runner,
                opts.handler,
                loop=HandlerLoop(self._loop),
                calls=calls,
                task_client=AgentAsyncTaskClient(self._task_client, calls),
            )
            self._runner.dispatch = self._async.dispatch
        self._handler = ControlHandler(
            self._runner,
            ControlHooks(
                concurrency=opts.concurrency,
                accepting=lambda: self._accepting,
                control_pubnub=lambda: self._control.pubnub if self._control else None,
                switch_environment=self._switch_environment,
                on_start_task=opts.on_start_task,
                on_cancel_task=opts.on_cancel_task,
            ),
        )

    def _control_events(self) -> ControlEvents:
        assert self._handler is not None
        return ControlEvents(
            on_message=self._handler.handle,
            on_reconnected=self._on_control_reconnected,
            on_access_denied=self._on_access_denied,
            on_connection_lost=self._on_control_lost,
        )

    def _control_client(
        self, network: NetworkSettings, keyset: Keyset, pubnub: PubNub | None
    ) -> ControlClient:
        assert self._http is not None and self._realtime is not None
        assert self._scheduler is not None
        return ControlClient(
            instance_id=self.instance_id,
            keyset=keyset,
            endpoint=network.endpoint,
            http=self._http,
            events=self._control_events(),
            realtime=self._realtime,
            scheduler=self._scheduler,
            heartbeat_ms=self._options.heartbeat_ms,
            pubnub=pubnub,
        )

    def _subscribe(self, network: NetworkSettings, result: ConnectResult) -> None:
        assert self._http is not None and self._presence is not None
        self._denied = False
        self._control = self._control_client(
            network, network.keyset(self._environment), self._options.pubnub
        )
        connected = self._control.subscribe(
            self._control_channel, self._control_token, SUBSCRIBE_WAIT_S
        )
        if self._denied:
            raise AuthError(
                f"the control channel refused this instance's access token; restart it so it "
                f"connects again (agent {self._options.agent_name})"
            )
        if not connected:
            logger.warning("control channel not connected yet; the client keeps retrying")
        self._presence.send_now()

    # --- runtime callbacks -----------------------------------------------------------------

    def _presence_target(self) -> PresenceTarget | None:
        if self._network is None or self._runner is None or not self._control_channel:
            return None
        state = InstancePresence(
            instance_id=self.instance_id,
            active_tasks=self._runner.announced_count,
            concurrency=self._options.concurrency,
            started_at=self._started_at,
            active_streams=self._streams.active_count if self._streams is not None else 0,
        ).to_wire()
        return PresenceTarget(
            self._network.keyset(self._environment),
            self._control_channel,
            self._control_token,
            state,
        )

    def _on_active_changed(self, count: int, announce_now: bool) -> None:
        if count == 0 and self._handler is not None:
            token = self._handler.take_control_token()
            if token:
                self._control_token = token
                if self._control is not None:
                    self._control.set_token(token)
        if self._presence is None:
            return
        if announce_now:
            self._presence.task_ended(count, self._options.concurrency)
        else:
            self._presence.active_changed(count, self._options.concurrency)

    def _on_control_reconnected(self) -> None:
        # Presence state lives in the network's memory: announce it again after a blip.
        if self._presence is not None and self._accepting:
            self._presence.resync()

    def _on_control_lost(self) -> None:
        # A restarted network answers no poll until a message comes, but takes presence
        # state at once: announce it until it does, or no task is dispatched to us.
        if self._presence is not None and self._accepting:
            self._presence.resync()

    def _on_access_denied(self) -> None:
        self._denied = True
        logger.error(
            "access token expired or revoked — agent %s is no longer receiving tasks. "
            "Re-register the agent (restart it).",
            self._options.agent_name,
            extra=fields(instanceId=self.instance_id),
        )
        self._accepting = False
        if self._scheduler is not None and self._control is not None:
            # Not on the client's own thread, which is reporting this status.
            control = self._control
            try:
                self._scheduler.call_later(0, control.stop)
            except Exception:
                logger.debug("could not schedule the control client stop", exc_info=True)
        self._stopped.set()

    def _on_reconnect(self, result: ConnectResult) -> None:
        if result.pam_token:
            self._control_token = result.pam_token
            if self._control is not None:
                self._control.set_token(result.pam_token)

    def _task_pubnub(self, creds: TaskCredentials) -> Any:
        assert self._network is not None and self._http is not None
        keyset = self._network.keyset(creds.environment)
        client = create_pubnub(
            subscribe_key=keyset.subscribe_key,
            publish_key=keyset.publish_key,
            user_id=self.instance_id,
            endpoint=self._network.endpoint,
            token=creds.write_token,
        )
        return use_pooled_requests(client, self._http)

    def _switch_environment(self, message: SwitchEnvironment) -> None:
        network = self._network
        if network is None or network.cdm is None or not self._control_channel:
            logger.info("SwitchEnvironment ignored: no second keyset is configured")
            return
        if message.environment == self._environment or not message.pam_token:
            return
        assert self._http is not None and self._control is not None
        assert self._realtime is not None and self._auth is not None
        old = self._control
        new = self._control_client(network, network.keyset(message.environment), None)
        old_environment, old_token = self._environment, self._control_token
        self._environment = message.environment
        self._control_token = message.pam_token
        self._control = new
        new.subscribe(self._control_channel, message.pam_token, 0)
        # Stop the old client off its own thread (this runs on its message thread).
        assert self._scheduler is not None
        self._scheduler.call_later(0, old.close)
        self._realtime.leave(
            network.keyset(old_environment), self._control_channel, token=old_token
        )
        mode = "paid" if message.environment == "network" else "free"
        self._billing_mode = mode
        self._auth.update_payload(billingMode=mode)
        if self._task_client is not None:
            self._task_client.switch_billing_mode(mode)
        if self._presence is not None:
            self._presence.mark_dirty()
        logger.info("switched to the %s keyset", message.environment)

    # --- handle ---------------------------------------------------------------------------

    def _handle(self) -> AgentInstanceHandle:
        assert self._runner is not None and self._control is not None
        cdm: CdmConfig | None = self._network.cdm if self._network else None
        return AgentInstanceHandle(
            stop=self.stop,
            agent_name=self._options.agent_name,
            instance_id=self.instance_id,
            task_client=self._task_client,
            publish_terminal=self.publish_terminal,
            fail_stream=self.fail_stream,
            pubnub=self._control.pubnub,
            cdm_config=cdm,
            wait=self.wait,
        )

    def publish_terminal(self, task_id: str, event: Mapping[str, Any]) -> bool:
        """End a task (typically a pipe whose handler returned) with ``{...event}``.

        Returns False when the instance knows nothing about the task any more; raises
        ClosedError after ``stop()``.
        """
        self._check_running()
        assert self._runner is not None
        ended = self._runner.publish_terminal(task_id, dict(event))
        if ended and self._presence is not None:
            self._presence.mark_dirty()
        return ended

    def fail_stream(self, stream_id: str, reason: str) -> int:
        """End every task holding ``stream_id`` with ``terminal failed error=reason``; returns
        how many. Raises ClosedError after ``stop()``."""
        self._check_running()
        assert self._runner is not None
        holders = self._streams.abort_stream(stream_id) if self._streams is not None else []
        holders += [c.task_id for c in self._runner.credentials.holding_stream(stream_id)]
        ended = 0
        for task_id in dict.fromkeys(holders):
            ended += self._runner.publish_terminal(task_id, {"state": "failed", "error": reason})
        return ended

    def _check_running(self) -> None:
        if self._stopped.is_set():
            raise ClosedError("the agent instance is stopped; start a new one")

    def running_task_ids(self) -> list[str]:
        """The ids of the tasks whose handlers run now (empty before start)."""
        return self._runner.in_flight() if self._runner is not None else []

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the instance stops (``stop()`` or a fatal error); True if it did."""
        return self._stopped.wait(timeout)

    # --- stop -----------------------------------------------------------------------------

    def stop(self, grace_s: float | None = None, *, hint: str = "") -> None:
        """Stop taking tasks, drain (``grace_s``, default ``AGENT_SHUTDOWN_GRACE_SEC``), end
        what is left as ``canceled``, leave presence and release everything. Blocks for at
        most the grace period plus a second or two; :meth:`stop_now` from another thread
        cuts the wait short. ``hint`` ends the line that announces the wait. Safe to call
        twice and from any thread."""
        with self._lock:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
        if already:
            self._stopped.wait(30.0)
            return
        self._accepting = False
        if self._runner is not None:
            grace = grace_from_env(self._environ) if grace_s is None else max(0.0, grace_s)
            report = drain(self._runner, grace, now=self._stop_now, hint=hint)
            self._abandoned = report.cancelled + report.forced > 0
        self._teardown()
        logger.info("agent instance stopped", extra=fields(instanceId=self.instance_id))

    def stop_now(self) -> None:
        """Make a running (or the next) :meth:`stop` skip the rest of its grace period:
        running handlers are cancelled and their tasks end ``canceled`` at once. Returns
        immediately; thread-safe."""
        if not self._stop_now.is_set() and self._runner is not None:
            running = self._runner.in_flight()
            if running:
                logger.warning(
                    "stopping now: ending %d running task(s) as canceled (%s)",
                    len(running),
                    ", ".join(running),
                )
        self._stop_now.set()

    # --- async with ------------------------------------------------------------------------

    async def __aenter__(self) -> AgentInstanceHandle:
        """Start off the loop (start-up blocks on the network); async handlers run on it."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop off the loop, so its handlers can finish within the grace period."""
        await asyncio.to_thread(self.stop)

    def _teardown(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.close()
            if self._network is not None and self._realtime is not None and self._control_channel:
                self._realtime.leave(
                    self._network.keyset(self._environment),
                    self._control_channel,
                    token=self._control_token,
                )
        if self._presence is not None:
            self._presence.close()
        if self._async is not None:
            self._async.close()
        if self._runner is not None:
            self._runner.close()
        if self._pool is not None:
            self._pool.close(timeout=ABANDON_JOIN_S if self._abandoned else POOL_JOIN_S)
        if self._scheduler is not None:
            self._scheduler.close()
        if self._task_client is not None:
            self._task_client.shutdown()
        if self._streams is not None:
            self._streams.close()
        for http in (self._http, self._publish_http):
            if http is not None:
                http.close()
        self._stopped.set()


def start_agent_instance(options: AgentInstanceOptions) -> AgentInstanceHandle:
    """Start an agent instance and return its handle (see :class:`AgentInstanceHandle`).

    Blocks until the instance is subscribed to its control channel and announced in presence
    (a few hundred milliseconds on a local network). Handlers then run on worker threads until
    ``handle["stop"]()``. Raises ConfigError (bad options or card, no ``BLOCKS_API_KEY``,
    unpublished agent), NetworkError (CDM or backend unreachable), ApiKeyInvalidError,
    AgentForcedOfflineError or BackendError (connect refused).
    """
    return AgentInstance(options).start()


async def start_agent_instance_async(options: AgentInstanceOptions) -> AgentInstanceHandle:
    """:func:`start_agent_instance` from async code: start-up runs off the loop, and an
    ``async def`` handler runs on the caller's running loop (not a thread of its own).

    Stop it with ``await asyncio.to_thread(handle["stop"])`` (a blocking ``stop`` on the loop
    would keep its handlers from finishing), or use ``async with AgentInstance(options)``.
    """
    return await AgentInstance(options, loop=asyncio.get_running_loop()).__aenter__()
