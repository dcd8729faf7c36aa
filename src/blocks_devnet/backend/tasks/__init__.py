"""The task service of the local Blocks backend (docs/task-service.md).

Modules: ``store`` (task rows), ``params`` (RPC params and card rules), ``submit`` (new
task records), ``dispatch`` (instance choice and StartTask), ``control`` (cancel and the
other control methods), ``channel_sync`` (records follow the task channel), ``scanner``
(the safety net), ``tokens`` (revocation at terminals), ``uploads`` (presigned upload
sessions), ``queries`` (GetTask, ListTasks, read tokens), ``views`` (wire shapes), ``rpc`` (the JSON-RPC route) and ``service`` (the
composition, :class:`TaskService`).
"""

from blocks_devnet.backend.tasks.service import TaskService
from blocks_devnet.backend.tasks.settings import TaskSettings

__all__ = ["TaskService", "TaskSettings"]
