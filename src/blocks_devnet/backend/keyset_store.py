"""The two Blocks keysets (playground and network), created once and kept in the database."""

from __future__ import annotations

from blocks_devnet.realtime.keysets import Keyset
from blocks_devnet.store.database import Database
from blocks_network.protocol.constants import MAX_UPLOAD_BYTES

ENVIRONMENTS = ("playground", "network")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keysets (
    name TEXT PRIMARY KEY,
    publish_key TEXT NOT NULL,
    subscribe_key TEXT NOT NULL UNIQUE,
    secret_key TEXT NOT NULL
);
"""


def load_or_create_keysets(db: Database) -> dict[str, Keyset]:
    """Both environments' keysets, access control always on, 25 MiB file limit."""
    db.ensure_schema(_SCHEMA)
    keysets: dict[str, Keyset] = {}
    for name in ENVIRONMENTS:
        row = db.query_one("SELECT * FROM keysets WHERE name=?", (name,))
        if row is None:
            fresh = Keyset.generate(name)
            db.execute(
                "INSERT INTO keysets (name, publish_key, subscribe_key, secret_key) VALUES (?,?,?,?)",
                (name, fresh.publish_key, fresh.subscribe_key, fresh.secret_key),
            )
            publish_key, subscribe_key, secret_key = (
                fresh.publish_key,
                fresh.subscribe_key,
                fresh.secret_key,
            )
        else:
            publish_key, subscribe_key, secret_key = (
                row["publish_key"],
                row["subscribe_key"],
                row["secret_key"],
            )
        keysets[name] = Keyset(
            name=name,
            publish_key=publish_key,
            subscribe_key=subscribe_key,
            secret_key=secret_key,
            access_enabled=True,
            max_file_bytes=MAX_UPLOAD_BYTES,
        )
    return keysets
