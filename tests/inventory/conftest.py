"""Inventory fixtures: a scanned demo project, a BOM with lineage, and a database that is
SQLite or a real PostgreSQL server (``MLWARD_TEST_PG_DSN``; ``.ci/run`` starts one)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from mlward import Settings
from mlward._internal.bom.inventory import Component, FileRecord, Inventory, Workflow
from mlward.findings import Report

PG_DSN = os.environ.get("MLWARD_TEST_PG_DSN")


def scan_demo(root: Path) -> Report:
    """The demo project (one malicious pickle among real model files), scanned in-process."""
    from mlward._internal.demo import build_demo_project
    from mlward._internal.pipeline import scan

    root.mkdir(parents=True, exist_ok=True)
    build_demo_project(root)
    return scan([root], settings=Settings(executor="inline", root=str(root)))


def lineage_bom(root: Path, name: str = "demo") -> Inventory:
    """A BOM in which ``data/train.csv`` trained ``models/classifier.pt`` in run ``train``."""
    return Inventory(
        name=name, root=str(root), created="2026-12-01T10:00:00Z", tool_version="test",
        components=(
            Component("model:classifier", "model", "classifier.pt", "models/classifier.pt",
                      files=(FileRecord("models/classifier.pt", 10, {"sha256": "ab" * 32}),),
                      properties={"format": "pytorch-zip"}, verdict="clean"),
            Component("dataset:train", "dataset", "train.csv", "data/train.csv",
                      properties={"format": "csv"}),
        ),
        workflows=(Workflow("run:train", "train", ("dataset:train",), ("model:classifier",),
                            run_id="r-1"),))


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return scan_demo(tmp_path_factory.mktemp("demo") / "demo-project")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def inventory_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh inventory location: a SQLite path or a PostgreSQL URL (own schema)."""
    if request.param == "sqlite":
        yield str(tmp_path / "inventory.db")
        return
    if not PG_DSN:
        pytest.skip("MLWARD_TEST_PG_DSN is not set (.ci/run starts a PostgreSQL server)")
    with postgres_schema() as dsn:
        yield dsn


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search path is a new schema, dropped afterwards."""
    import psycopg

    assert PG_DSN is not None
    schema = f"mlward_inv_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_DSN else "?"
    try:
        yield f"{PG_DSN}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
