"""No answer leaves the server before the commit that covers what it tells.

The database commits the writes of each event-loop turn together, at the end of the turn
(:meth:`~blocks_devnet.store.database.Database.batch_commits`). Every HTTP answer computed
while writes wait for that commit (a SendMessage's task id, a publish's timetoken, a
subscribe answer carrying a StartTask) is held until the commit is done, so a client is
never told of something a crash (SIGKILL) could still take back. Requests of one turn share
the commit; a lone request waits for one commit, never for a timer.

aiohttp's answers wait in ``on_response_prepare``; the fast path (:mod:`blocks_devnet.
fast_path`) holds its answers itself through :data:`COMMIT_GATE`.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from blocks_devnet.store.database import Database

#: ``gate(callback)``: True when the answers computed now must wait, and then
#: ``callback(None)`` runs right after the commit (``callback(error)`` if it failed).
CommitGate = Callable[[Callable[[BaseException | None], None]], bool]

COMMIT_GATE: web.AppKey[CommitGate] = web.AppKey("commit_gate", CommitGate)  # type: ignore[arg-type]


def install(app: web.Application, db: Database) -> None:
    """Hold every answer of ``app`` until the database committed what it may tell."""
    app[COMMIT_GATE] = db.after_commit

    async def wait_for_commit(_request: web.Request, _response: web.StreamResponse) -> None:
        # Raises the database's error if the batch was rolled back: nothing was accepted.
        await db.durable()

    app.on_response_prepare.append(wait_for_commit)
