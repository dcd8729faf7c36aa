"""What every backend component shares: the database, the realtime service, the keysets.

Backend code publishes and grants *in process* (no HTTP hop): it appends to the realtime
message log and signs access tokens with the keyset's secret key directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from blocks_devnet.backend.config import DevnetConfig
from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.realtime.service import RealtimeService
from blocks_devnet.store.database import Database

if TYPE_CHECKING:
    from blocks_devnet.backend.identity import IdentityStore
    from blocks_devnet.backend.jwt_tokens import JwtIssuer
    from blocks_devnet.backend.registry import AgentRegistry
    from blocks_devnet.backend.tasks.service import TaskService

#: The publisher uuid the backend uses for its own messages.
BACKEND_UUID = "blocks-backend"


@dataclass
class BackendContext:
    config: DevnetConfig
    db: Database
    realtime: RealtimeService
    #: Keysets by environment name: ``"playground"`` and ``"network"``.
    keysets: dict[str, Keyset]
    #: The public base URL clients use (``http://HOST:PORT``), set once the port is known.
    base_url: str = ""
    # Components, set by ``backend.app.create_devnet_app`` in dependency order.
    identity: IdentityStore = field(init=False)
    jwt: JwtIssuer = field(init=False)
    registry: AgentRegistry = field(init=False)
    tasks: TaskService = field(init=False)

    def keyset_for_environment(self, environment: str) -> Keyset:
        return self.keysets[environment]

    def publish(
        self,
        environment: str,
        channel: str,
        message: Any,
        *,
        meta: dict[str, Any] | None = None,
        store: bool = True,
    ) -> int:
        """Publish as the backend (privileged) on an environment's keyset; returns the timetoken."""
        keyset = self.keysets[environment]
        return self.realtime.messages.append(
            subscribe_key=keyset.subscribe_key,
            channel=channel,
            publisher=BACKEND_UUID,
            message=message,
            message_json=json.dumps(message, separators=(",", ":")),
            meta=meta,
            store=store,
        )


CONTEXT_KEY: web.AppKey[BackendContext] = web.AppKey("backend_context", BackendContext)


def context_of(request: web.Request) -> BackendContext:
    return request.app[CONTEXT_KEY]
