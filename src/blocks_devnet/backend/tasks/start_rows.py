"""StartTask rows leave the disk when their task ends.

A StartTask is published unstored on the agent's control channel; it reaches SQLite only
so that an instance catching up after a network restart still gets it. Once the task has
ended nobody should run it, so its row is dropped: from the write-behind queue if it was
not written yet, else with the next commit. It carries the task's request and two tokens
(~1.4 KB, a third of the disk an echo task took). Live subscribers are unaffected: the
channel's in-memory buffer keeps the message.
"""

from __future__ import annotations

from typing import Any

from blocks_devnet.backend.context import BACKEND_UUID
from blocks_devnet.realtime.message_log import MessageLog

#: StartTasks remembered at most (one per task between dispatch and terminal); beyond it
#: the oldest is forgotten and its row waits for the unstored-message prune instead.
MAX_TRACKED = 65_536
_CONTROL_SUFFIX = ".control"


class StartTaskRows:
    """A message-log observer remembering each StartTask's timetoken until its terminal."""

    def __init__(self, messages: MessageLog) -> None:
        self._messages = messages
        self._timetokens: dict[str, int] = {}

    def __call__(
        self,
        subscribe_key: str,
        channel: str,
        timetoken: int,
        message: Any,
        meta: Any,
        publisher: str,
    ) -> None:
        if (
            publisher != BACKEND_UUID
            or not channel.endswith(_CONTROL_SUFFIX)
            or not isinstance(message, dict)
            or message.get("type") != "StartTask"
        ):
            return
        task_id = message.get("taskId")
        if not isinstance(task_id, str):
            return
        timetokens = self._timetokens
        if len(timetokens) >= MAX_TRACKED:
            del timetokens[next(iter(timetokens))]
        timetokens[task_id] = timetoken

    def __len__(self) -> int:
        return len(self._timetokens)

    def on_terminal(self, task_id: str) -> None:
        """The task ended: its StartTask row is no longer needed on disk."""
        timetoken = self._timetokens.pop(task_id, None)
        if timetoken is not None:
            self._messages.discard_unstored_row(timetoken)
