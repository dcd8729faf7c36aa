"""Credentials: consumer tokens (three modes) and, from the agent runtime, agent tokens."""

from blocks_network.auth.consumer_auth import AuthErrorCallback, ConsumerAuth
from blocks_network.auth.refresh_policy import RefreshPolicy, RefreshTiming
from blocks_network.auth.token_types import TokenEndpointConfig, TokenProvider, TokenResult

__all__ = [
    "AuthErrorCallback",
    "ConsumerAuth",
    "RefreshPolicy",
    "RefreshTiming",
    "TokenEndpointConfig",
    "TokenProvider",
    "TokenResult",
]
