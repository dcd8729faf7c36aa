"""Configuration of a local Blocks Network: a validated, frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from blocks_devnet.connection_guard import ConnectionTimeouts

DEFAULT_HOST = "127.0.0.1"
#: A fixed default port so the printed env lines stay valid across restarts.
DEFAULT_PORT = 4280
DEFAULT_DATA_DIR = Path(".blocks") / "devnet"
#: Access JWT lifetime (seconds).
DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 3600
#: Refresh token lifetime (seconds).
DEFAULT_REFRESH_TOKEN_TTL_SECONDS = 30 * 24 * 3600
#: How often the safety-net scanner looks for stuck tasks.
DEFAULT_SCAN_INTERVAL_SECONDS = 1.0
#: Task history and finished task records older than this are deleted (0: kept forever).
DEFAULT_RETENTION_DAYS = 7.0
#: The WAL file is started over (and cut back to this size) once it grows past it.
DEFAULT_WAL_LIMIT_MB = 64.0
#: Default agent maxPendingBacklog (protocol.md §9.9).
DEFAULT_MAX_PENDING_BACKLOG = 10


@dataclass(frozen=True)
class DevnetConfig:
    """Everything that shapes one local network process.

    ``data_dir=None`` keeps everything in memory (nothing survives a restart).
    ``auto_register_agents`` lets an agent whose card is not registered yet register on
    connect (on for ``blocks devnet``, off for a production-like run). ``fast_path``
    answers plain publishes and RPCs in front of aiohttp (``fast_path.py``); off, aiohttp
    serves every request. ``tls`` serves HTTPS with a certificate from a local CA kept in
    ``data_dir/tls`` (a temporary folder, removed at stop, when ``data_dir`` is None).
    ``connection_timeouts`` bound how long a connection may wait idle, send a request head,
    or trickle a body (``connection_guard.py``).
    ``retention_days`` bounds how long task channels' history and finished task records are
    kept (0: for ever); ``wal_limit_mb`` bounds the WAL file.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path | None = DEFAULT_DATA_DIR
    long_poll_seconds: float = 280.0
    access_token_ttl_seconds: int = DEFAULT_ACCESS_TOKEN_TTL_SECONDS
    refresh_token_ttl_seconds: int = DEFAULT_REFRESH_TOKEN_TTL_SECONDS
    scan_interval_seconds: float = DEFAULT_SCAN_INTERVAL_SECONDS
    auto_register_agents: bool = True
    register_builtin_agents: bool = True
    fast_path: bool = True
    tls: bool = False
    connection_timeouts: ConnectionTimeouts = field(default_factory=ConnectionTimeouts)
    retention_days: float = DEFAULT_RETENTION_DAYS
    wal_limit_mb: float = DEFAULT_WAL_LIMIT_MB

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.long_poll_seconds <= 0 or self.long_poll_seconds >= 310:
            raise ValueError("long_poll_seconds must be in (0, 310): the client times out at 310 s")
        if self.access_token_ttl_seconds < 1 or self.refresh_token_ttl_seconds < 1:
            raise ValueError("token lifetimes must be at least 1 second")
        if self.scan_interval_seconds <= 0:
            raise ValueError("scan_interval_seconds must be positive")
        if self.retention_days < 0:
            raise ValueError(
                f"retention_days must be 0 (keep forever) or positive, got {self.retention_days}"
            )
        if self.wal_limit_mb <= 0:
            raise ValueError(f"wal_limit_mb must be positive, got {self.wal_limit_mb}")
