"""TaskClient: the consumer's entry point (seed "Consumer API", protocol §1.3, §4, §5).

``TaskClient.create(billing_mode, ...)`` resolves keys and the backend URL (explicit >
``BLOCKS_*`` > CDM), obtains a consumer token in one of three modes, and then submits tasks
(``send_message``), reattaches to them (``connect``) and reads the registry and task
records. One keep-alive HTTP pool serves the backend, the token endpoint and every
session's PubNub client.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from blocks_network.auth.consumer_auth import AuthErrorCallback, ConsumerAuth
from blocks_network.auth.token_types import TokenEndpointConfig, TokenProvider
from blocks_network.config import ClientConfig, read_env, resolve_client_config
from blocks_network.consumer import task_records
from blocks_network.consumer.backend import BackendClient
from blocks_network.consumer.parts import encode_request_parts
from blocks_network.consumer.realtime import SessionRealtime
from blocks_network.consumer.rpc_client import RpcClient
from blocks_network.consumer.task_records import TaskList
from blocks_network.consumer.task_session import TaskSession
from blocks_network.consumer.uploads import InputUploader
from blocks_network.errors import AuthError, BackendError, ClosedError, ConfigError
from blocks_network.protocol.channels import task_channel
from blocks_network.protocol.constants import (
    ENVIRONMENT_NETWORK,
    ENVIRONMENT_PLAYGROUND,
    STREAM_DRAIN_WINDOW_S,
    TASK_READ_TOKEN_ROLE_CONSUMER,
)
from blocks_network.protocol.errors import ProtocolError
from blocks_network.protocol.rpc import (
    METHOD_CANCEL_TASK,
    METHOD_PAUSE_TASK,
    METHOD_RESUME_TASK,
    METHOD_RETRY_TASK,
    METHOD_SEND_MESSAGE,
    METHOD_TERMINATE_TASK,
)
from blocks_network.protocol.task_api import (
    SendMessageParams,
    SendMessageResult,
    TaskInfo,
    TaskReadTokenResponse,
)
from blocks_network.transport.http_client import HttpClient

__all__ = ["TaskClient", "TaskList", "create_task_client"]

logger = logging.getLogger(__name__)


class TaskClient:
    """Submits and follows tasks for one billing mode; thread-safe; a context manager.

    Build it with :meth:`create` (or :func:`create_task_client`). ``destroy()`` stops the
    token refresh timer and closes open sessions; it does not invalidate the token.
    """

    def __init__(
        self, config: ClientConfig, auth: ConsumerAuth | None, *, http: HttpClient | None = None
    ) -> None:
        """Wire a client from resolved parts (low level; ``auth`` must be started)."""
        self.config = config
        self._auth = auth
        self._http = http or HttpClient()
        self._backend = BackendClient(self._http, config.base_url, auth)
        self._rpc = RpcClient(self._backend)
        self._realtime = SessionRealtime(
            config.realtime, config.subscribe_key, config.publish_key, self._http
        )
        self._lock = threading.Lock()
        self._sessions: set[TaskSession] = set()
        self._closed = False

    @classmethod
    def create(
        cls,
        billing_mode: str,
        *,
        api_key: str | None = None,
        token_endpoint: str | TokenEndpointConfig | None = None,
        token_provider: TokenProvider | None = None,
        on_auth_error: AuthErrorCallback | None = None,
        cdm_url: str | None = None,
        subscribe_key: str | None = None,
        publish_key: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> TaskClient:
        """A ready client: CDM fetched, first token obtained, refresh timer armed (blocking).

        ``billing_mode`` is ``"free"`` (playground keyset) or ``"paid"`` (network keyset) and
        must match the target agent's. Auth is exactly one of ``api_key``,
        ``token_endpoint`` or ``token_provider``; with none, ``BLOCKS_API_KEY`` is used.
        ``environ`` replaces ``os.environ`` for the ``BLOCKS_*`` variables.

        Raises ConfigError (bad billing mode, no credentials, unusable CDM document),
        NetworkError (CDM or backend unreachable), ApiKeyInvalidError / AuthError (the token
        could not be obtained).
        """
        env = read_env(os.environ if environ is None else environ)
        http = HttpClient()
        auth: ConsumerAuth | None = None
        try:
            config = resolve_client_config(
                billing_mode,
                http=http,
                env=env,
                cdm_url=cdm_url,
                subscribe_key=subscribe_key,
                publish_key=publish_key,
                base_url=base_url,
            )
            explicit = api_key or token_endpoint or token_provider
            auth = ConsumerAuth.from_options(
                http=http,
                base_url=config.base_url,
                api_key=api_key if explicit else env.api_key,
                token_endpoint=token_endpoint,
                token_provider=token_provider,
                on_auth_error=on_auth_error,
            )
            auth.start()
        except BaseException:
            if auth is not None:
                auth.destroy()
            http.close()
            raise
        return cls(config, auth, http=http)

    # --- identity and lifecycle ---------------------------------------------------------------

    @property
    def billing_mode(self) -> str:
        return self.config.billing_mode

    def get_user_id(self) -> str | None:
        """The authenticated user id (the default ``owner_id``), if the token source gave one."""
        return None if self._auth is None else self._auth.user_id

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this TaskClient was destroyed; create a new one")

    def destroy(self) -> None:
        """Stop the refresh timer and close open sessions; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sessions = list(self._sessions)
            self._sessions.clear()
        for session in sessions:
            session.close()
        self._realtime.close()
        if self._auth is not None:
            self._auth.destroy()
        self._http.close()

    close = destroy

    def __enter__(self) -> TaskClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def _track(self, session: TaskSession) -> TaskSession:
        with self._lock:
            if self._closed:
                session.close()
                raise ClosedError("this TaskClient was destroyed; create a new one")
            self._sessions.add(session)
        return session

    def _untrack(self, session: TaskSession) -> None:
        with self._lock:
            self._sessions.discard(session)

    def _preflight(self) -> None:
        self._check_open()
        if self._auth is not None:
            self._auth.preflight()

    # --- sending ----------------------------------------------------------------------------

    def send_message(
        self,
        agent_name: str,
        request_parts: Sequence[Any],
        *,
        idempotency_key: str | None = None,
        owner_id: str | None = None,
        task_kind: str | None = None,
        duration: int | None = None,
        stream: bool | None = None,
        drain_window_s: float = STREAM_DRAIN_WINDOW_S,
        consumer_public_key: str | None = None,
        push_notification_config: Mapping[str, Any] | None = None,
        retry_policy: Mapping[str, Any] | None = None,
    ) -> TaskSession:
        """Submit a task to ``agent_name`` and return its live session (blocking until the
        task exists and the subscription is started; events then arrive in the background).

        ``owner_id`` defaults to the authenticated user. ``task_kind="pipe"`` needs an integer
        ``duration`` in minutes; request tasks take none. Files in ``request_parts`` go inline
        up to ``ARTIFACT_INLINE_LIMIT_BYTES``, via presigned upload above (25 MiB max).

        Raises ConfigError (bad arguments), ArtifactError (file too large / upload refused),
        BillingModeMismatchError, RpcError, AuthRefreshFailedError, NetworkError.
        """
        self._preflight()
        fields = self._send_fields(
            agent_name,
            owner_id,
            {
                "idempotency_key": idempotency_key,
                "stream": stream,
                "task_kind": task_kind,
                "duration": duration,
                "consumer_public_key": consumer_public_key,
                "push_notification_config": push_notification_config,
                "retry_policy": retry_policy,
            },
        )
        uploader = InputUploader(self._backend, agent_name)
        wire_parts, upload_session_id = encode_request_parts(
            request_parts, inline_limit=self.config.inline_limit_bytes, upload=uploader.upload
        )
        params = self._params(fields, wire_parts, upload_session_id)
        # Taken before the task exists: its channel is new, so nothing older can be missed.
        cursor = self._realtime.cursor()
        result = self._parse_result(self._rpc.call(METHOD_SEND_MESSAGE, params.to_wire()))
        session = self._sent_session(result, fields, drain_window_s)
        self._start_following(session, result, cursor)
        return session

    def _send_fields(
        self, agent_name: str, owner_id: str | None, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """SendMessage's fields (both APIs); checks the cheap rules (task kind, duration)
        before any file is uploaded."""
        if not isinstance(agent_name, str) or not agent_name:
            raise ConfigError("agent_name must be a non-empty string, e.g. 'echo'")
        fields: dict[str, Any] = {
            "agent_name": agent_name,
            "billing_mode": self.config.billing_mode,
            "owner_id": owner_id or self.get_user_id() or "",
            **options,
        }
        self._params(fields, [], None)
        return fields

    def _sent_session(
        self, result: SendMessageResult, fields: Mapping[str, Any], drain_window_s: float
    ) -> TaskSession:
        """The session of a task SendMessage created (both APIs), not yet following."""
        owner = fields["owner_id"]
        return self._new_session(
            result.task_id,
            result.status_channel or task_channel(owner, result.task_id),
            result.read_token,
            realtime=self._realtime.with_keys(result.subscribe_key, result.publish_key),
            agent_name=fields["agent_name"],
            state=result.state,
            drain_window_s=drain_window_s,
        )

    @staticmethod
    def _start_following(session: TaskSession, result: SendMessageResult, cursor: int) -> None:
        """Follow a sent task from ``cursor``, or (an idempotent re-send) catch up on its
        history first, which blocks."""
        try:
            if result.idempotent:
                session._catch_up(result.state, follow=not result.is_terminal)
            else:
                session._follow(cursor)
        except BackendError as exc:
            # The task exists whatever happens here: hand back the session anyway.
            logger.warning(
                "task %s: catch-up failed (%s); events may be missing", result.task_id, exc
            )

    @staticmethod
    def _params(
        fields: dict[str, Any], parts: list[dict[str, Any]], upload_session_id: str | None
    ) -> SendMessageParams:
        wire = task_records.send_params(
            request_parts=parts, upload_session_id=upload_session_id, **fields
        )
        try:
            return SendMessageParams.from_wire(wire)
        except ProtocolError as exc:
            raise ConfigError(f"send_message: {exc}") from exc

    @staticmethod
    def _parse_result(result: Any) -> SendMessageResult:
        try:
            return SendMessageResult.from_wire(result)
        except ProtocolError as exc:
            raise BackendError(f"SendMessage returned an unexpected result: {exc}") from exc

    def _new_session(
        self,
        task_id: str,
        channel: str,
        read_token: str | None,
        *,
        realtime: SessionRealtime,
        agent_name: str | None,
        state: str | None,
        drain_window_s: float,
    ) -> TaskSession:
        session = TaskSession(
            task_id,
            channel,
            realtime=realtime,
            read_token=read_token,
            agent_name=agent_name,
            state=state,
            drain_window_s=drain_window_s,
            cancel=self.cancel_task,
            terminate=self.terminate_task,
            read_token_source=lambda: self._read_token(task_id).pam_token,
            on_close=self._untrack,
            user_id=self.get_user_id(),
        )
        return self._track(session)

    # --- reattaching ---------------------------------------------------------------------------

    def connect(
        self,
        task_id: str,
        *,
        drain_window_s: float = STREAM_DRAIN_WINDOW_S,
        role: str = TASK_READ_TOKEN_ROLE_CONSUMER,
    ) -> TaskSession:
        """A session for an existing task, pre-filled from its history (blocking).

        Finished tasks give a session that is not subscribed (state, events and artifacts
        from history); active tasks are followed live from the newest stored event.
        Raises AuthError without credentials, RpcError for an unknown task or one that is
        not yours (``code`` TASK_NOT_FOUND), NetworkError when unreachable.
        """
        self._check_open()
        if self._auth is None or self._auth.token is None:
            raise AuthError(
                "connect() needs an authenticated TaskClient: create it with api_key=..., "
                "token_endpoint=... or token_provider=..."
            )
        self._preflight()
        info = self.get_task(task_id)
        session = self._connected_session(info, self._read_token(task_id, role), drain_window_s)
        self._catch_up_or_close(session, info)
        return session

    def _connected_session(
        self, info: TaskInfo, grant: TaskReadTokenResponse, drain_window_s: float
    ) -> TaskSession:
        """The session of an existing task (both APIs), not yet caught up."""
        return self._new_session(
            info.task_id,
            grant.channel,
            grant.pam_token,
            realtime=self._realtime,
            agent_name=info.agent_name,
            state=info.state,
            drain_window_s=drain_window_s,
        )

    @staticmethod
    def _catch_up_or_close(session: TaskSession, info: TaskInfo) -> None:
        """Load the task's history and follow it if still active (blocking); a failure
        closes the session."""
        try:
            session._catch_up(info.state, follow=True)
        except BaseException:
            session.close()
            raise

    def _read_token(
        self, task_id: str, role: str = TASK_READ_TOKEN_ROLE_CONSUMER
    ) -> TaskReadTokenResponse:
        return task_records.read_token(self._backend, task_id, role)

    # --- records ---------------------------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskInfo:
        """The task's record (RPC GetTask). Raises RpcError (TASK_NOT_FOUND) if unknown."""
        self._preflight()
        return task_records.get_task(self._rpc, task_id)

    def list_tasks(
        self,
        *,
        owner_id: str | None = None,
        agent_name: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskList:
        """One page of tasks you may see, newest first (RPC ListTasks); pass ``next`` back as
        ``cursor`` for the following page."""
        self._preflight()
        return task_records.list_tasks(
            self._rpc,
            owner_id=owner_id,
            agent_name=agent_name,
            state=state,
            limit=limit,
            cursor=cursor,
        )

    def get_agent_card(self, name: str) -> dict[str, Any] | None:
        """The agent's card from the registry, or None if no such agent is visible to you."""
        self._preflight()
        return task_records.get_agent_card(self._backend, name)

    # --- task control ----------------------------------------------------------------------------

    def _control(self, method: str, task_id: str) -> None:
        self._preflight()
        self._rpc.call(method, {"taskId": task_id})

    def cancel_task(self, task_id: str) -> None:
        """Ask the agent to stop cooperatively (RPC CancelTask)."""
        self._control(METHOD_CANCEL_TASK, task_id)

    def terminate_task(self, task_id: str) -> None:
        """End the task (RPC TerminateTask): terminal ``canceled``, reason ``terminated``."""
        self._control(METHOD_TERMINATE_TASK, task_id)

    def pause_task(self, task_id: str) -> None:
        self._control(METHOD_PAUSE_TASK, task_id)

    def resume_task(self, task_id: str) -> None:
        self._control(METHOD_RESUME_TASK, task_id)

    def retry_task(self, task_id: str) -> None:
        self._control(METHOD_RETRY_TASK, task_id)


def create_task_client(
    env: str = ENVIRONMENT_PLAYGROUND,
    *,
    api_key: str | None = None,
    token_endpoint: str | TokenEndpointConfig | None = None,
    token_provider: TokenProvider | None = None,
    on_auth_error: AuthErrorCallback | None = None,
    cdm_url: str | None = None,
    subscribe_key: str | None = None,
    publish_key: str | None = None,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> TaskClient:
    """``TaskClient.create`` by environment: ``"playground"`` (free) or ``"network"`` (paid)."""
    if env not in (ENVIRONMENT_PLAYGROUND, ENVIRONMENT_NETWORK):
        raise ConfigError(f"env must be 'playground' or 'network', got {env!r}")
    return TaskClient.create(
        "free" if env == ENVIRONMENT_PLAYGROUND else "paid",
        api_key=api_key,
        token_endpoint=token_endpoint,
        token_provider=token_provider,
        on_auth_error=on_auth_error,
        cdm_url=cdm_url,
        subscribe_key=subscribe_key,
        publish_key=publish_key,
        base_url=base_url,
        environ=environ,
    )
