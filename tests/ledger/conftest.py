"""Ledger fixtures: every store test runs against SQLite and a real PostgreSQL server.

PostgreSQL comes from ``MLWARD_TEST_PG_DSN`` (``.ci/run`` starts one on 127.0.0.1); each test
gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from mlward._internal.ledger.store import open_store

PG_DSN = os.environ.get("MLWARD_TEST_PG_DSN")


def _pg_schema_dsn(schema: str) -> str:
    assert PG_DSN is not None
    sep = "&" if "?" in PG_DSN else "?"
    return f"{PG_DSN}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger database location: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
        return
    if not PG_DSN:
        pytest.skip("MLWARD_TEST_PG_DSN is not set (.ci/run starts a PostgreSQL server)")
    import psycopg

    schema = f"mlward_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_dsn(schema)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def execute_sql(url: str, sql: str, params: tuple[object, ...] = ()) -> None:
    """Run SQL straight against the database, as an attacker with write access would."""
    store = open_store(url)
    try:
        cur = store._conn.cursor()
        cur.execute(store._sql(sql), params)
        cur.close()
    finally:
        store.close()
