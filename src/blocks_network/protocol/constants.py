"""Named constants of the Blocks wire protocol (version 2026-05-01).

Every literal that both the SDK and the local network must agree on lives here: the protocol
version, header names, size limits, state/kind/mode vocabularies, stream defaults, HTTP paths
and environment variable names. Values are exactly those of docs/protocol.md in the spec.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "ANONYMOUS_OWNER_ID",
    "API_PATH_AGENT_CONNECT",
    "API_PATH_AGENT_REFRESH",
    "API_PATH_ANON_TASK_READ_TOKEN",
    "API_PATH_CONSUMER_TOKEN",
    "API_PATH_FILES_CONFIRM_UPLOAD",
    "API_PATH_FILES_REQUEST_UPLOAD",
    "API_PATH_REGISTRY_AGENTS",
    "API_PATH_RPC",
    "API_PATH_TASK_READ_TOKEN",
    "ARTIFACT_INLINE_LIMIT_BYTES",
    "BILLING_MODES",
    "BILLING_MODE_ENVIRONMENTS",
    "BILLING_MODE_FREE",
    "BILLING_MODE_PAID",
    "CDM_TIMEOUT_S",
    "COMPLETION_REASON_DURATION_EXPIRED",
    "CONTROL_RECONNECT_MAX_INTERVAL_S",
    "CONTROL_RECONNECT_MAX_RETRIES",
    "DEFAULT_AGENT_SHUTDOWN_GRACE_S",
    "DEFAULT_CDM_URL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_CONSUMER_TOKEN_TTL_S",
    "DEFAULT_DECLARED_STREAM",
    "DEFAULT_EXPECTED_INSTANCES",
    "DEFAULT_FILE_PART_ID",
    "DEFAULT_MAX_PENDING_BACKLOG",
    "DEFAULT_TEXT_PART_ID",
    "DEPRECATED_PROTOCOL_VERSIONS",
    "ENVIRONMENTS",
    "ENVIRONMENT_NETWORK",
    "ENVIRONMENT_PLAYGROUND",
    "ENV_AGENT_SHUTDOWN_GRACE_SEC",
    "ENV_API_KEY",
    "ENV_ARTIFACT_INLINE_LIMIT_BYTES",
    "ENV_BACKEND_URL",
    "ENV_CDM_URL",
    "ENV_CLI_VERSION",
    "ENV_LOG_LEVEL",
    "ENV_PUBLISH_KEY",
    "ENV_STREAM_BUNDLE_SIZE",
    "ENV_STREAM_GATING",
    "ENV_STREAM_MAX_LATENCY_MS",
    "ENV_STREAM_MAX_MESSAGE_SIZE",
    "ENV_SUBSCRIBE_KEY",
    "HISTORY_PAGE_SIZE",
    "HTTP_TIMEOUT_S",
    "LISTINGS",
    "LISTING_PRIVATE",
    "LISTING_PUBLIC",
    "MAX_UPLOAD_BYTES",
    "MULTIPART_GROUP_TTL_S",
    "MULTIPART_MAX_CONCURRENT_PUBLISHES",
    "MULTIPART_MAX_PENDING_GROUPS",
    "MULTIPART_OVERHEAD_BYTES",
    "PIPE_DURATION_MAX_MINUTES",
    "PIPE_DURATION_MIN_MINUTES",
    "PRESENCE_HEARTBEAT_INTERVAL_S",
    "PRESENCE_TIMEOUT_S",
    "PROTOCOL_VERSION",
    "PROTOCOL_VERSION_HEADER",
    "RESERVED_OWNER_PREFIXES",
    "SDK_DISTRIBUTION",
    "SDK_LANGUAGE",
    "SESSION_DEDUP_WINDOW",
    "STATUS_THROTTLE_S",
    "STREAM_AFFINITIES",
    "STREAM_BINARY_EVENT_KEY",
    "STREAM_BUNDLE_SIZE_BYTES",
    "STREAM_BYTES_FIRST_SEQ",
    "STREAM_DEFAULT_DURATION_MINUTES",
    "STREAM_DIRECTIONS",
    "STREAM_DRAIN_WINDOW_S",
    "STREAM_ENCODING_BASE64",
    "STREAM_ENCODING_UTF8",
    "STREAM_EVENTS_FIRST_SEQ",
    "STREAM_FALLBACK_MAX_RUNNING_TIME_S",
    "STREAM_FORMATS",
    "STREAM_ID_MAX_BYTES",
    "STREAM_MAX_LATENCY_MS",
    "STREAM_MAX_MESSAGE_SIZE_BYTES",
    "STREAM_PUBLISH_ATTEMPTS",
    "STREAM_PUBLISH_BACKOFF_MS",
    "STREAM_REORDER_WINDOW_MS",
    "STREAM_REPLAY_TIMETOKEN",
    "STREAM_SETUP_PHASES",
    "STREAM_SUBSCRIBE_GRACE_MS",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "SYSTEM_STATUS_HEARTBEAT",
    "SYSTEM_STATUS_PAUSED",
    "SYSTEM_STATUS_RESUMED",
    "TASK_KINDS",
    "TASK_KIND_PIPE",
    "TASK_KIND_REQUEST",
    "TASK_READ_TOKEN_ROLES",
    "TASK_READ_TOKEN_ROLE_CONSUMER",
    "TASK_READ_TOKEN_ROLE_PROVIDER",
    "TASK_READ_TOKEN_TIMEOUT_S",
    "TASK_STATE_CANCELED",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_RUNNING",
    "TERMINAL_REASON_TERMINATED",
    "TERMINAL_STATES",
    "UNKNOWN_SDK_VERSION",
    "UPLOAD_ROLE_CONSUMER_INPUT",
    "UPLOAD_ROLE_PROVIDER_OUTPUT",
    "UPLOAD_TIMEOUT_S",
    "WAIT_FOR_TERMINAL_TIMEOUT_S",
    "WRITE_AFFINITY_HEADER",
    "BillingMode",
    "Environment",
    "StreamAffinity",
    "StreamDirection",
    "StreamFormat",
    "StreamSetupPhase",
    "TaskKind",
]

# --- Versioning (§0) ------------------------------------------------------------------------
PROTOCOL_VERSION: Final = "2026-05-01"
SUPPORTED_PROTOCOL_VERSIONS: Final[tuple[str, ...]] = (PROTOCOL_VERSION,)
DEPRECATED_PROTOCOL_VERSIONS: Final[tuple[str, ...]] = ()
PROTOCOL_VERSION_HEADER: Final = "Blocks-Protocol-Version"
WRITE_AFFINITY_HEADER: Final = "X-Write-Affinity"
SDK_LANGUAGE: Final = "Python"
SDK_DISTRIBUTION: Final = "blocks-network"
"""Distribution whose installed version is sent as ``sdkVersion``."""
UNKNOWN_SDK_VERSION: Final = "unknown"

# --- Sizes (§5.6, §7) -------------------------------------------------------------------------
ARTIFACT_INLINE_LIMIT_BYTES: Final = 16_384
"""An artifact or input file is sent inline (base64) iff its size is ≤ this."""
MAX_UPLOAD_BYTES: Final = 26_214_400
"""Largest presigned upload (25 MiB); also the upper bound of a card's ``maxSizeBytes``."""

# --- CDM config (§1) --------------------------------------------------------------------------
DEFAULT_CDM_URL: Final = "https://blocksnetwork.s3.us-west-2.amazonaws.com/config.json"
"""The URL the seed README documents (the reference code's constant differs; see docs)."""

# --- Task states, kinds, billing (§1.3, §3) ---------------------------------------------------
TaskKind = Literal["request", "pipe"]
BillingMode = Literal["free", "paid"]
Environment = Literal["playground", "network"]

TASK_STATE_RUNNING: Final = "running"
TASK_STATE_COMPLETED: Final = "completed"
TASK_STATE_FAILED: Final = "failed"
TASK_STATE_CANCELED: Final = "canceled"
TERMINAL_STATES: Final = frozenset({TASK_STATE_COMPLETED, TASK_STATE_FAILED, TASK_STATE_CANCELED})

TASK_KIND_REQUEST: Final = "request"
TASK_KIND_PIPE: Final = "pipe"
TASK_KINDS: Final[tuple[TaskKind, ...]] = ("request", "pipe")

BILLING_MODE_FREE: Final = "free"
BILLING_MODE_PAID: Final = "paid"
BILLING_MODES: Final[tuple[BillingMode, ...]] = ("free", "paid")

ENVIRONMENT_PLAYGROUND: Final = "playground"
ENVIRONMENT_NETWORK: Final = "network"
ENVIRONMENTS: Final[tuple[Environment, ...]] = ("playground", "network")
BILLING_MODE_ENVIRONMENTS: Final = MappingProxyType(
    {BILLING_MODE_FREE: ENVIRONMENT_PLAYGROUND, BILLING_MODE_PAID: ENVIRONMENT_NETWORK}
)
"""Which keyset a billing mode uses: free → playground, paid → network."""

TERMINAL_REASON_TERMINATED: Final = "terminated"
COMPLETION_REASON_DURATION_EXPIRED: Final = "duration_expired"

SYSTEM_STATUS_PAUSED: Final = "paused"
SYSTEM_STATUS_RESUMED: Final = "resumed"
SYSTEM_STATUS_HEARTBEAT: Final = "heartbeat"

# --- Pipe tasks (§3.4.3, §3.5) ----------------------------------------------------------------
PIPE_DURATION_MIN_MINUTES: Final = 1
PIPE_DURATION_MAX_MINUTES: Final = 43_200

# --- Owners and listings (§2, §3.1, §5.7) -----------------------------------------------------
ANONYMOUS_OWNER_ID: Final = "anonymous"
RESERVED_OWNER_PREFIXES: Final[tuple[str, ...]] = (
    "agent",
    "obs",
    "sys",
    "u",
    "anonymous",
    "system",
    "stream",
)
LISTING_PUBLIC: Final = "public"
LISTING_PRIVATE: Final = "private"
LISTINGS: Final[tuple[str, ...]] = (LISTING_PUBLIC, LISTING_PRIVATE)

# --- Presence and control client (§9.2) -------------------------------------------------------
PRESENCE_TIMEOUT_S: Final = 20
PRESENCE_HEARTBEAT_INTERVAL_S: Final = PRESENCE_TIMEOUT_S // 2 - 1
CONTROL_RECONNECT_MAX_RETRIES: Final = 43_200
CONTROL_RECONNECT_MAX_INTERVAL_S: Final = 60
STATUS_THROTTLE_S: Final = 1.0
"""At most one ``progress`` message publish per task per this window (§9.6)."""
DEFAULT_CONCURRENCY: Final = 1
DEFAULT_EXPECTED_INSTANCES: Final = 1
DEFAULT_MAX_PENDING_BACKLOG: Final = 10
DEFAULT_AGENT_SHUTDOWN_GRACE_S: Final = 3.0

# --- Streams (§8) -------------------------------------------------------------------------------
StreamDirection = Literal["outbound", "inbound", "bidirectional"]
StreamFormat = Literal["bytes", "events"]
StreamAffinity = Literal["dedicated", "shared"]
StreamSetupPhase = Literal["embedded", "token_request", "activate"]

STREAM_DIRECTIONS: Final[tuple[StreamDirection, ...]] = ("outbound", "inbound", "bidirectional")
STREAM_FORMATS: Final[tuple[StreamFormat, ...]] = ("bytes", "events")
STREAM_AFFINITIES: Final[tuple[StreamAffinity, ...]] = ("dedicated", "shared")
STREAM_SETUP_PHASES: Final[tuple[StreamSetupPhase, ...]] = ("embedded", "token_request", "activate")
DEFAULT_DECLARED_STREAM: Final = "_default"
STREAM_ID_MAX_BYTES: Final = 92

STREAM_BUNDLE_SIZE_BYTES: Final = 4096
STREAM_MAX_LATENCY_MS: Final = 250
STREAM_MAX_MESSAGE_SIZE_BYTES: Final = 16_384
STREAM_REORDER_WINDOW_MS: Final = 750
STREAM_DRAIN_WINDOW_S: Final = 30.0
STREAM_SUBSCRIBE_GRACE_MS: Final = 1000
STREAM_DEFAULT_DURATION_MINUTES: Final = 60
STREAM_FALLBACK_MAX_RUNNING_TIME_S: Final = 3600
STREAM_REPLAY_TIMETOKEN: Final = 1000
"""Subscribing from this timetoken replays the channel's in-memory cache."""
STREAM_PUBLISH_ATTEMPTS: Final = 3
STREAM_PUBLISH_BACKOFF_MS: Final[tuple[int, ...]] = (100, 200)
STREAM_BYTES_FIRST_SEQ: Final = 0
STREAM_EVENTS_FIRST_SEQ: Final = 1
STREAM_ENCODING_UTF8: Final = "utf8"
STREAM_ENCODING_BASE64: Final = "base64"
STREAM_BINARY_EVENT_KEY: Final = "$binary"

MULTIPART_OVERHEAD_BYTES: Final = 512
MULTIPART_MAX_CONCURRENT_PUBLISHES: Final = 8
MULTIPART_GROUP_TTL_S: Final = 30.0
MULTIPART_MAX_PENDING_GROUPS: Final = 64

# --- Consumer side (§4) -----------------------------------------------------------------------
HISTORY_PAGE_SIZE: Final = 100
SESSION_DEDUP_WINDOW: Final = 200
WAIT_FOR_TERMINAL_TIMEOUT_S: Final = 60.0
DEFAULT_TEXT_PART_ID: Final = "text"
DEFAULT_FILE_PART_ID: Final = "file"
TASK_READ_TOKEN_ROLE_CONSUMER: Final = "consumer"
TASK_READ_TOKEN_ROLE_PROVIDER: Final = "provider"
TASK_READ_TOKEN_ROLES: Final[tuple[str, ...]] = (
    TASK_READ_TOKEN_ROLE_CONSUMER,
    TASK_READ_TOKEN_ROLE_PROVIDER,
)
DEFAULT_CONSUMER_TOKEN_TTL_S: Final = 60

# --- Backend HTTP API (§4.1, §5) -----------------------------------------------------------------
API_PATH_RPC: Final = "/api/v1/rpc"
API_PATH_AGENT_CONNECT: Final = "/api/v1/auth/agent/connect"
API_PATH_AGENT_REFRESH: Final = "/api/v1/auth/agent/refresh"
API_PATH_CONSUMER_TOKEN: Final = "/api/v1/auth/agent/consumer-token"
API_PATH_TASK_READ_TOKEN: Final = "/api/v1/auth/task-read-token"
API_PATH_ANON_TASK_READ_TOKEN: Final = "/api/v1/auth/anon-task-read-token"
API_PATH_FILES_REQUEST_UPLOAD: Final = "/api/v1/files/request-upload"
API_PATH_FILES_CONFIRM_UPLOAD: Final = "/api/v1/files/confirm-upload"
API_PATH_REGISTRY_AGENTS: Final = "/api/v1/registry/agents"
UPLOAD_ROLE_CONSUMER_INPUT: Final = "consumer-input"
UPLOAD_ROLE_PROVIDER_OUTPUT: Final = "provider-output"

HTTP_TIMEOUT_S: Final = 30.0
TASK_READ_TOKEN_TIMEOUT_S: Final = 15.0
CDM_TIMEOUT_S: Final = 10.0
UPLOAD_TIMEOUT_S: Final = 120.0

# --- Environment variables (§10.9) ------------------------------------------------------------
ENV_API_KEY: Final = "BLOCKS_API_KEY"
ENV_CDM_URL: Final = "BLOCKS_CDM_URL"
ENV_SUBSCRIBE_KEY: Final = "BLOCKS_SUBSCRIBE_KEY"
ENV_PUBLISH_KEY: Final = "BLOCKS_PUBLISH_KEY"
ENV_BACKEND_URL: Final = "BLOCKS_BACKEND_URL"
ENV_CLI_VERSION: Final = "BLOCKS_CLI_VERSION"
ENV_LOG_LEVEL: Final = "LOG_LEVEL"
ENV_ARTIFACT_INLINE_LIMIT_BYTES: Final = "ARTIFACT_INLINE_LIMIT_BYTES"
ENV_AGENT_SHUTDOWN_GRACE_SEC: Final = "AGENT_SHUTDOWN_GRACE_SEC"
ENV_STREAM_MAX_MESSAGE_SIZE: Final = "STREAM_MAX_MESSAGE_SIZE"
ENV_STREAM_BUNDLE_SIZE: Final = "STREAM_BUNDLE_SIZE"
ENV_STREAM_MAX_LATENCY_MS: Final = "STREAM_MAX_LATENCY_MS"
ENV_STREAM_GATING: Final = "STREAM_GATING"
