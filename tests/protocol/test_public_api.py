"""Pins the public surface of blocks_network.protocol so it changes only on purpose."""

from __future__ import annotations

import importlib

import blocks_network.protocol as protocol

_SUBMODULES = (
    "agent_card",
    "artifacts",
    "cdm",
    "channels",
    "constants",
    "control",
    "errors",
    "events",
    "ids",
    "multipart",
    "parts",
    "presence",
    "rpc",
    "stream_setup",
    "streams",
    "task_api",
)

# A word list keeps ~300 pinned names readable; a list literal would take one line each.
_PINNED = """
    CARD_TOP_LEVEL_KEYS
    AGENT_AT_CAPACITY AGENT_FORCED_OFFLINE AGENT_NOT_FOUND AGENT_OUT_OF_SCOPE ANONYMOUS_OWNER_ID
    API_KEY_INVALID API_PATH_AGENT_CONNECT API_PATH_AGENT_REFRESH API_PATH_ANON_TASK_READ_TOKEN
    API_PATH_CONSUMER_TOKEN API_PATH_FILES_CONFIRM_UPLOAD API_PATH_FILES_REQUEST_UPLOAD
    API_PATH_REGISTRY_AGENTS API_PATH_RPC API_PATH_TASK_READ_TOKEN ARTIFACT_INLINE_LIMIT_BYTES
    AUTH_REFRESH_RETRYABLE_CODES AgentCard AgentCardError AnonTaskReadTokenRequest ArtifactEvent
    ArtifactRef BILLING_MODES BILLING_MODE_ENVIRONMENTS BILLING_MODE_FREE BILLING_MODE_MISMATCH
    BILLING_MODE_PAID BillingMode CDM_TIMEOUT_S COMPLETION_REASON_DURATION_EXPIRED
    CONTROL_RECONNECT_MAX_INTERVAL_S CONTROL_RECONNECT_MAX_RETRIES CancelRequested CancelTask
    CardInput CardOutput CardRuntime CardStream CardTag CdmConfig ControlMessage
    DEFAULT_AGENT_SHUTDOWN_GRACE_S DEFAULT_CDM_URL DEFAULT_CLIENT_ID DEFAULT_CONCURRENCY
    DEFAULT_CONSUMER_TOKEN_TTL_S DEFAULT_DECLARED_STREAM DEFAULT_EXPECTED_INSTANCES
    DEFAULT_FILE_PART_ID DEFAULT_MAX_PENDING_BACKLOG DEFAULT_MIME_TYPE DEFAULT_TEXT_PART_ID
    DEPRECATED_PROTOCOL_VERSIONS EMBEDDED_JWT_KILLED EMBEDDED_JWT_LOGOUT EMBEDDED_JWT_REVOKED
    EMBEDDED_JWT_SCOPE_DRIFT ENVIRONMENTS ENVIRONMENT_NETWORK ENVIRONMENT_PLAYGROUND
    ENV_AGENT_SHUTDOWN_GRACE_SEC ENV_API_KEY ENV_ARTIFACT_INLINE_LIMIT_BYTES ENV_BACKEND_URL
    ENV_CDM_URL ENV_CLI_VERSION ENV_LOG_LEVEL ENV_PUBLISH_KEY ENV_STREAM_BUNDLE_SIZE
    ENV_STREAM_GATING ENV_STREAM_MAX_LATENCY_MS ENV_STREAM_MAX_MESSAGE_SIZE ENV_SUBSCRIBE_KEY
    Environment ExpireTask FORBIDDEN FileArtifactRef HISTORY_PAGE_SIZE HTTP_TIMEOUT_S
    INVALID_REQUEST INVALID_START_TASK InlineArtifactRef InstancePresence JSONRPC_VERSION Keyset
    LISTINGS LISTING_PRIVATE LISTING_PUBLIC LogEvent MAX_UPLOAD_BYTES METHOD_CANCEL_TASK
    METHOD_GET_TASK METHOD_LIST_TASKS METHOD_PAUSE_TASK METHOD_RESUME_TASK METHOD_RETRY_TASK
    METHOD_SEND_MESSAGE METHOD_TERMINATE_TASK MULTIPART_GROUP_TTL_S
    MULTIPART_MAX_CONCURRENT_PUBLISHES MULTIPART_MAX_PENDING_GROUPS MULTIPART_OVERHEAD_BYTES
    MultipartAssembler MultipartFrame PIPE_DURATION_MAX_MINUTES PIPE_DURATION_MIN_MINUTES
    PRESENCE_HEARTBEAT_INTERVAL_S PRESENCE_SUFFIX PRESENCE_TIMEOUT_S PROTOCOL_VERSION
    PROTOCOL_VERSION_HEADER PauseTask ProgressMessage ProgressState ProtocolError
    REFRESH_TOKEN_INVALID REGISTRY_ALL REGISTRY_LOG REGISTRY_PRIVATE REGISTRY_PUBLIC
    RESERVED_OWNER_PREFIXES RPC_AGENT_UNAVAILABLE RPC_BILLING_MODE_MISMATCH RPC_CONFLICT
    RPC_FORBIDDEN RPC_INTERNAL_ERROR RPC_INVALID_PARAMS RPC_INVALID_REQUEST RPC_METHODS
    RPC_METHOD_NOT_FOUND RPC_NOT_FOUND RPC_PARSE_ERROR RPC_UNAUTHORIZED RealtimeOrigin
    RequestEvent RequestPart ResumeTask RetryTask RpcErrorObject RpcErrorData RpcFailure RpcRequest
    RpcRequestError RpcResponse RpcSuccess SDK_DISTRIBUTION SDK_LANGUAGE SESSION_DEDUP_WINDOW
    STATUS_THROTTLE_S STREAM_AFFINITIES STREAM_BINARY_EVENT_KEY STREAM_BUNDLE_SIZE_BYTES
    STREAM_BYTES_FIRST_SEQ STREAM_CRASHED STREAM_DEFAULT_DURATION_MINUTES STREAM_DIRECTIONS
    STREAM_DRAIN_WINDOW_S STREAM_ENCODING_BASE64 STREAM_ENCODING_UTF8 STREAM_EVENTS_FIRST_SEQ
    STREAM_FALLBACK_MAX_RUNNING_TIME_S STREAM_FORMATS STREAM_ID_MAX_BYTES STREAM_MAX_LATENCY_MS
    STREAM_MAX_MESSAGE_SIZE_BYTES STREAM_PUBLISH_ATTEMPTS STREAM_PUBLISH_BACKOFF_MS
    STREAM_REORDER_WINDOW_MS STREAM_REPLAY_TIMETOKEN STREAM_SETUP_FAILED_PRECONDITION
    STREAM_SETUP_INVALID_ARGUMENT STREAM_SETUP_PERMISSION_DENIED STREAM_SETUP_PHASES
    STREAM_SETUP_REJECTION_STATUS STREAM_SUBSCRIBE_GRACE_MS SUPPORTED_PROTOCOL_VERSIONS
    SYSTEM_STATUS_HEARTBEAT SYSTEM_STATUS_PAUSED SYSTEM_STATUS_RESUMED SendMessageParams
    SendMessageResult StartTask StreamAffinity StreamAnnouncement StreamChannel StreamDataFrame
    StreamDirection StreamEndFrame StreamEventsFrame StreamFormat StreamFrame StreamSetup
    StreamSetupFailure StreamSetupOk StreamSetupPhase StreamSetupResult StreamStarted
    SwitchEnvironment SystemEvent TASK_KINDS TASK_KIND_PIPE TASK_KIND_REQUEST TASK_NOT_FOUND
    TASK_READ_TOKEN_ROLES TASK_READ_TOKEN_ROLE_CONSUMER TASK_READ_TOKEN_ROLE_PROVIDER
    TASK_READ_TOKEN_TIMEOUT_S TASK_STATE_CANCELED TASK_STATE_COMPLETED TASK_STATE_FAILED
    TASK_STATE_RUNNING TERMINAL_REASON_TERMINATED TERMINAL_STATES TaskChannel TaskEvent
    TaskIdParams TaskInfo TaskKind TaskReadTokenRequest TaskReadTokenResponse TerminalEvent
    TerminateTask UNAUTHORIZED UNKNOWN_SDK_VERSION UNSUPPORTED_PROTOCOL_VERSION
    UPLOAD_ROLE_CONSUMER_INPUT UPLOAD_ROLE_PROVIDER_OUTPUT UPLOAD_TIMEOUT_S
    WAIT_FOR_TERMINAL_TIMEOUT_S WRITE_AFFINITY_HEADER agent_channel_wildcard
    billing_mode_mismatch_data broadcast_control_meta content_class control_channel
    control_filter_expression decode_binary_event encode_binary_event encode_frame_json
    environment_for_billing_mode handler_error_text instance_agent_name invert_direction
    is_broadcast_meta is_reserved_owner_id is_supported_protocol_version is_valid_agent_name
    multipart_id multipart_piece_size new_download_client_id new_instance_id new_rpc_id
    new_session_client_id normalize_tag_slug observability_channel parse_artifact_ref
    parse_billing_mode_mismatch parse_control_channel parse_control_message parse_request_parts
    parse_rpc_response parse_setup_channel parse_stream_channel parse_stream_frame
    parse_stream_setup_rejection parse_stream_setup_result parse_task_channel parse_task_event
    presence_channel public_card registry_tag_index resolve_cdm_url setup_channel split_frame
    stream_channel stream_channel_wildcard stream_client_id stream_frame_meta
    stream_sender_filter stream_setup_rejection_body targeted_control_meta task_channel
    task_channel_wildcard task_client_user_id task_event_meta task_object_id validate_agent_card
    validate_agent_name validate_stream_id
"""
EXPECTED = set(_PINNED.split())


def test_all_is_pinned() -> None:
    assert set(protocol.__all__) == EXPECTED


def test_all_has_no_duplicates_and_every_name_resolves() -> None:
    assert len(protocol.__all__) == len(set(protocol.__all__))
    for name in protocol.__all__:
        assert hasattr(protocol, name), name


def test_package_reexports_exactly_the_submodules_public_names() -> None:
    names: set[str] = set()
    for module_name in _SUBMODULES:
        module = importlib.import_module(f"blocks_network.protocol.{module_name}")
        exported = set(module.__all__)
        assert not names & exported, f"{module_name} re-exports a name another module owns"
        names |= exported
    assert names == set(protocol.__all__)
