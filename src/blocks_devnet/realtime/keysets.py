"""Keysets: isolated namespaces of channels, presence, history, files and tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

#: PubNub's own per-file limit; the Blocks keysets raise it for presigned uploads.
PUBNUB_FILE_LIMIT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Keyset:
    """One PubNub keyset served by the local network.

    ``access_enabled`` switches Access Manager enforcement on: every auth-required
    endpoint then needs a valid token (or a request signed with ``secret_key``).
    """

    name: str
    publish_key: str
    subscribe_key: str
    secret_key: str
    access_enabled: bool = False
    max_file_bytes: int = PUBNUB_FILE_LIMIT_BYTES

    @classmethod
    def generate(
        cls,
        name: str,
        *,
        access_enabled: bool = False,
        max_file_bytes: int = PUBNUB_FILE_LIMIT_BYTES,
    ) -> Keyset:
        """A keyset with fresh random keys in PubNub's key formats."""
        suffix = secrets.token_hex(16)
        return cls(
            name=name,
            publish_key=f"pub-c-{suffix}",
            subscribe_key=f"sub-c-{suffix}",
            secret_key=f"sec-c-{secrets.token_urlsafe(32)}",
            access_enabled=access_enabled,
            max_file_bytes=max_file_bytes,
        )


class KeysetRegistry:
    """Looks keysets up by the keys that appear in request paths."""

    def __init__(self, keysets: Iterable[Keyset]) -> None:
        self._by_subscribe_key: dict[str, Keyset] = {}
        self._by_name: dict[str, Keyset] = {}
        for keyset in keysets:
            if keyset.subscribe_key in self._by_subscribe_key:
                raise ValueError(f"duplicate subscribe key {keyset.subscribe_key!r}")
            self._by_subscribe_key[keyset.subscribe_key] = keyset
            self._by_name[keyset.name] = keyset

    def by_subscribe_key(self, subscribe_key: str) -> Keyset | None:
        return self._by_subscribe_key.get(subscribe_key)

    def by_name(self, name: str) -> Keyset:
        return self._by_name[name]

    def __iter__(self) -> object:
        return iter(self._by_subscribe_key.values())

    def all(self) -> list[Keyset]:
        return list(self._by_subscribe_key.values())
