"""Constants whose exact values the spec fixes (a typo here breaks interoperability)."""

from __future__ import annotations

from blocks_network import protocol as p


def test_versioning_and_headers() -> None:
    assert p.PROTOCOL_VERSION == "2026-05-01"
    assert p.SUPPORTED_PROTOCOL_VERSIONS == ("2026-05-01",)
    assert p.PROTOCOL_VERSION_HEADER == "Blocks-Protocol-Version"
    assert p.WRITE_AFFINITY_HEADER == "X-Write-Affinity"


def test_sizes_and_urls() -> None:
    assert p.ARTIFACT_INLINE_LIMIT_BYTES == 16384
    assert p.MAX_UPLOAD_BYTES == 26214400 == 25 * 1024 * 1024
    assert p.DEFAULT_CDM_URL == "https://blocksnetwork.s3.us-west-2.amazonaws.com/config.json"


def test_vocabularies() -> None:
    assert {"completed", "failed", "canceled"} == p.TERMINAL_STATES
    assert p.TASK_KINDS == ("request", "pipe")
    assert p.BILLING_MODES == ("free", "paid")
    assert dict(p.BILLING_MODE_ENVIRONMENTS) == {"free": "playground", "paid": "network"}
    assert p.STREAM_DIRECTIONS == ("outbound", "inbound", "bidirectional")
    assert p.STREAM_FORMATS == ("bytes", "events")
    assert p.STREAM_AFFINITIES == ("dedicated", "shared")
    assert p.STREAM_SETUP_PHASES == ("embedded", "token_request", "activate")
    assert set(p.RESERVED_OWNER_PREFIXES) == {
        "agent",
        "obs",
        "sys",
        "u",
        "anonymous",
        "system",
        "stream",
    }


def test_stream_and_presence_defaults() -> None:
    assert p.STREAM_BUNDLE_SIZE_BYTES == 4096
    assert p.STREAM_MAX_LATENCY_MS == 250
    assert p.STREAM_MAX_MESSAGE_SIZE_BYTES == 16384
    assert p.STREAM_REORDER_WINDOW_MS == 750
    assert p.STREAM_DRAIN_WINDOW_S == 30
    assert p.STREAM_ID_MAX_BYTES == 92
    assert (p.STREAM_BYTES_FIRST_SEQ, p.STREAM_EVENTS_FIRST_SEQ) == (0, 1)
    assert p.MULTIPART_OVERHEAD_BYTES == 512
    assert p.MULTIPART_MAX_PENDING_GROUPS == 64
    assert p.MULTIPART_GROUP_TTL_S == 30
    assert (p.PIPE_DURATION_MIN_MINUTES, p.PIPE_DURATION_MAX_MINUTES) == (1, 43200)
    assert p.PRESENCE_TIMEOUT_S == 20
    assert p.PRESENCE_HEARTBEAT_INTERVAL_S == 9


def test_env_var_names() -> None:
    assert {
        p.ENV_API_KEY,
        p.ENV_CDM_URL,
        p.ENV_LOG_LEVEL,
        p.ENV_ARTIFACT_INLINE_LIMIT_BYTES,
        p.ENV_SUBSCRIBE_KEY,
        p.ENV_PUBLISH_KEY,
        p.ENV_BACKEND_URL,
        p.ENV_CLI_VERSION,
        p.ENV_AGENT_SHUTDOWN_GRACE_SEC,
        p.ENV_STREAM_MAX_MESSAGE_SIZE,
        p.ENV_STREAM_BUNDLE_SIZE,
        p.ENV_STREAM_MAX_LATENCY_MS,
        p.ENV_STREAM_GATING,
    } == {
        "BLOCKS_API_KEY",
        "BLOCKS_CDM_URL",
        "LOG_LEVEL",
        "ARTIFACT_INLINE_LIMIT_BYTES",
        "BLOCKS_SUBSCRIBE_KEY",
        "BLOCKS_PUBLISH_KEY",
        "BLOCKS_BACKEND_URL",
        "BLOCKS_CLI_VERSION",
        "AGENT_SHUTDOWN_GRACE_SEC",
        "STREAM_MAX_MESSAGE_SIZE",
        "STREAM_BUNDLE_SIZE",
        "STREAM_MAX_LATENCY_MS",
        "STREAM_GATING",
    }


def test_api_paths() -> None:
    assert p.API_PATH_RPC == "/api/v1/rpc"
    assert p.API_PATH_AGENT_CONNECT == "/api/v1/auth/agent/connect"
    assert p.API_PATH_TASK_READ_TOKEN == "/api/v1/auth/task-read-token"
    assert p.API_PATH_REGISTRY_AGENTS == "/api/v1/registry/agents"
