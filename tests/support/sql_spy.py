"""Record the SQL a :class:`Database` reads with (``query``/``query_one``), for tests."""

from __future__ import annotations

from typing import Any

import pytest

from blocks_devnet.store.database import Database


def read_statements(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement ``db`` reads with from now on (in order); the reads still run."""
    seen: list[str] = []
    for name in ("query", "query_one"):
        real = getattr(db, name)

        def spy(sql: str, params: Any = (), real: Any = real) -> Any:
            seen.append(sql)
            return real(sql, params)

        monkeypatch.setattr(db, name, spy)
    return seen


def counts(statements: list[str]) -> list[str]:
    """The statements among ``statements`` that count rows."""
    return [sql for sql in statements if "COUNT(" in sql.upper()]
