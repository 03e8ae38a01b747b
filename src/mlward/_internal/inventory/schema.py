"""The inventory's tables, one schema for SQLite and PostgreSQL, and its migrations.

Migrations are a list of numbered steps and a one-row-per-step ``inventory_schema`` table,
not Alembic: the inventory has a handful of tables that only mlward writes, every step must
run unattended inside ``mlward scan`` (no ``alembic upgrade`` for a user to remember), and
a numbered list in the package is all the version history it needs. A step is written once
and never edited; a new schema is a new step appended to :data:`MIGRATIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from mlward._internal.inventory.errors import InventoryError

metadata = MetaData()

schema_table = Table(
    "inventory_schema", metadata,
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=False),
    Column("applied", String(32), nullable=False),
)

projects = Table(
    "projects", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("root", Text, nullable=False),
    Column("created", String(32), nullable=False),
)

documents = Table(
    "documents", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # report, bom, gate, audit
    Column("action", String(64), nullable=False),  # the command that made it
    Column("time", String(32), nullable=False),  # when it was made
    Column("ingested", String(32), nullable=False),
    Column("source", String(16), nullable=False),  # local or push
    Column("current", Integer, nullable=False),  # 1: the newest of its project/kind/action
    Column("verdict", String(16)),  # pass / fail / inconclusive
    Column("critical", Integer, nullable=False),
    Column("high", Integer, nullable=False),
    Column("medium", Integer, nullable=False),
    Column("low", Integer, nullable=False),
    Column("info", Integer, nullable=False),
    Column("summary", Text, nullable=False),  # JSON: what the overview shows of it
    Column("body", Text, nullable=False),  # the document as ingested (JSON)
    Index("ix_documents_project", "project_id", "kind", "current"),
)

findings = Table(
    "findings", metadata,
    Column("id", Integer, primary_key=True),
    Column("document_id", Integer, ForeignKey("documents.id"), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("current", Integer, nullable=False),
    Column("rule_id", String(32), nullable=False),
    Column("severity", Integer, nullable=False),  # Severity's value: sorts and filters
    Column("path", Text, nullable=False),  # the location as one display string
    Column("message", Text, nullable=False),
    Column("evidence", Text),
    Column("remediation", Text),
    Column("cwe", String(32)),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # open, new, waived, baseline, expired-waiver
    Column("time", String(32), nullable=False),
    Index("ix_findings_current", "current", "severity"),
    Index("ix_findings_project", "project_id", "current"),
    Index("ix_findings_rule", "rule_id"),
)

assets = Table(
    "assets", metadata,
    Column("id", Integer, primary_key=True),
    Column("document_id", Integer, ForeignKey("documents.id"), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("current", Integer, nullable=False),
    Column("kind", String(32), nullable=False),  # model, dataset, dependency, tool, bucket
    Column("name", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("format", String(64)),
    Column("digest", String(80)),
    Column("verdict", String(16)),
    Column("data", Text, nullable=False),  # JSON: the facts or BOM properties
    Index("ix_assets_current", "current", "kind"),
    Index("ix_assets_location", "project_id", "location"),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[projects, documents, findings, assets])


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "projects, documents, findings, assets", _v1),
]
"""(version, description, step), oldest first. Append; never edit a step once released."""

LATEST = MIGRATIONS[-1][0]


def migrate(conn: Connection) -> int:
    """Bring the schema to :data:`LATEST` and return the version it was at before (0: new).

    Each step and its row in ``inventory_schema`` commit together; when two processes
    migrate at once, the loser's insert of the version row fails and it re-reads."""
    schema_table.create(conn, checkfirst=True)
    conn.commit()
    done = set(conn.scalars(select(schema_table.c.version)))
    before = max(done, default=0)
    if before > LATEST:
        raise InventoryError(f"the inventory's schema is version {before}, newer than this "
                           f"mlward knows ({LATEST}): upgrade mlward")
    for version, description, step in MIGRATIONS:
        if version in done:
            continue
        try:
            step(conn)
            conn.execute(insert(schema_table).values(
                version=version, description=description,
                applied=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")))
            conn.commit()
        except IntegrityError:  # another process applied it first
            conn.rollback()
    return before
