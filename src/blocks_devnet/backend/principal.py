"""Who is calling: the identity carried by a verified access JWT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["consumer", "agent"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Consumers act for ``user_id`` in ``org_id``; agents additionally carry the registry
    ``agent_id``/``agent_name`` and the ``instance_id`` that connected.
    """

    user_id: str
    org_id: str
    kind: PrincipalKind
    agent_id: str | None = None
    agent_name: str | None = None
    instance_id: str | None = None
