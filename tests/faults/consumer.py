"""The consumer side of fault tests: the SDK's TaskClient plus what it does not expose,
the raw task channel history read with the official pubnub client.

The SDK keeps only the first terminal of a task, so "exactly one terminal" is checked on
the channel history itself: a duplicate terminal would be stored there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from pubnub.pnconfiguration import PNConfiguration
from pubnub.pubnub import PubNub

from blocks_network import RpcError, TaskClient, TaskSession, text_part
from blocks_network.consumer.history import fetch_history
from blocks_network.protocol.constants import API_PATH_TASK_READ_TOKEN, TERMINAL_STATES
from blocks_network.protocol.errors import RPC_AGENT_UNAVAILABLE, TASK_NOT_FOUND
from tests.faults.harness import POLL_S, Devnet, SleeperAgent
from tests.support.backend_client import BackendClient
from tests.support.task_rpc import wait_until

#: How long a task may take to end once the network is back (the handler's sleep included).
SETTLE_TIMEOUT_S = 60.0


class Consumer:
    """A TaskClient of the devnet's development user, plus history and record checks."""

    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        self.client = TaskClient.create(
            "free",
            api_key=devnet.env["BLOCKS_API_KEY"],
            cdm_url=devnet.env["BLOCKS_CDM_URL"],
            environ={},
        )
        self.sessions: dict[str, TaskSession] = {}

    def close(self) -> None:
        self.client.destroy()

    # --- sending ---------------------------------------------------------------------------

    def send(self, agent: str, text: str) -> TaskSession:
        """Send one task and keep its live session (closed by :meth:`close`)."""
        session = self.client.send_message(agent, [text_part(text)])
        self.sessions[session.task_id] = session
        return session

    def probe(self, agent: str, *, deadline: float) -> TaskSession:
        """A task sent once the agent is back, ended by ``deadline`` (``time.monotonic()``).

        SendMessage answers AGENT_UNAVAILABLE until the instance has announced itself to the
        restarted network; that answer is the only one retried.
        """
        while True:
            try:
                session = self.send(agent, "0")
                break
            except RpcError as exc:
                if exc.rpc_code != RPC_AGENT_UNAVAILABLE or time.monotonic() > deadline:
                    raise AssertionError(
                        f"probe to {agent} not accepted before its deadline: {exc}"
                    ) from exc
                time.sleep(POLL_S)
        remaining = max(0.0, deadline - time.monotonic())
        try:
            terminal = session.wait_for_terminal(timeout=remaining)
        except TimeoutError:
            raise AssertionError(
                f"probe {session.task_id} to {agent} did not end in time "
                f"(record: {self.client.get_task(session.task_id).state})"
            ) from None
        assert terminal.state == "completed", (agent, terminal.state, terminal.error)
        return session

    def wait_all_terminal(self, task_ids: Iterable[str], timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Every session's terminal, within ``timeout`` overall; fails naming the stragglers."""
        deadline = time.monotonic() + timeout
        missing = []
        for task_id in task_ids:
            try:
                self.sessions[task_id].wait_for_terminal(
                    timeout=max(0.1, deadline - time.monotonic())
                )
            except TimeoutError:
                missing.append(task_id)
        if missing:
            records = {tid: self.state_of(tid) for tid in missing[:10]}
            raise AssertionError(
                f"{len(missing)} tasks got no terminal event within {timeout:.0f} s; "
                f"records of the first: {records}"
            )

    def state_of(self, task_id: str) -> str:
        """The record's state, or ``"gone"`` when GetTask does not know the task."""
        try:
            return self.client.get_task(task_id).state
        except RpcError as exc:
            if exc.code != TASK_NOT_FOUND:
                raise
            return "gone"

    def assert_none_gone(self, task_ids: Iterable[str]) -> None:
        """Every acknowledged task still exists (after a restart)."""
        ids = list(task_ids)
        gone = [task_id for task_id in ids if self.state_of(task_id) == "gone"]
        assert not gone, f"{len(gone)} of {len(ids)} acknowledged tasks are gone: {gone[:5]}"

    def wait_records_terminal(
        self, task_ids: Iterable[str], timeout: float = SETTLE_TIMEOUT_S
    ) -> None:
        """Every task's record (GetTask) in a terminal state within ``timeout`` overall."""
        pending = list(task_ids)

        def settled() -> bool:
            while pending and self.client.get_task(pending[0]).state in TERMINAL_STATES:
                pending.pop(0)
            return not pending

        try:
            wait_until(settled, timeout, "every task record to reach a terminal state")
        except AssertionError as exc:
            record = self.state_of(pending[0])
            raise AssertionError(f"{exc}: {len(pending)} left, {pending[0]} is {record}") from None

    # --- what the network stored -----------------------------------------------------------

    def _reader(self) -> PubNub:
        """An official pubnub client on the devnet's free keyset (stop it when done)."""
        config = PNConfiguration()
        config.origin = self.devnet.origin
        config.ssl = False
        config.subscribe_key = self.client.config.subscribe_key
        config.user_id = "fault-test-reader"
        config.daemon = True
        return PubNub(config)

    def assert_exactly_once(
        self,
        task_ids: Iterable[str],
        *,
        state: str = "completed",
        agent: SleeperAgent | None = None,
    ) -> None:
        """Each task: one terminal stored, in ``state``, the record agreeing with it, and
        (with ``agent``) its handler started exactly once. Fails listing every broken task."""
        api = BackendClient(self.devnet.url)
        reader = self._reader()
        problems: list[str] = []
        try:
            token = api.consumer_token(self.devnet.env["BLOCKS_API_KEY"])["accessToken"]
            for task_id in task_ids:
                reply = api.post(API_PATH_TASK_READ_TOKEN, {"taskId": task_id}, token=token)
                assert reply.status == 200, (task_id, reply.body)
                reader.set_token(reply.body["pamToken"])
                stored = [
                    m.get("state")
                    for _tt, m in fetch_history(reader, reply.body["channel"])
                    if isinstance(m, dict) and m.get("type") == "terminal"
                ]
                problems.extend(self._problems(task_id, stored, state, agent))
        finally:
            reader.stop()
            api.close()
        assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)

    def _problems(
        self, task_id: str, stored: list[Any], state: str, agent: SleeperAgent | None
    ) -> list[str]:
        problems = []
        record = self.client.get_task(task_id).state
        if stored != [state]:
            problems.append(f"{task_id}: terminals on the channel {stored}, want [{state!r}]")
        if record != (stored[0] if stored else state):
            problems.append(f"{task_id}: record state {record!r}, channel {stored}")
        if agent is not None and (runs := len(agent.pids_of(task_id))) != 1:
            problems.append(f"{task_id}: handler started {runs} times")
        return problems
