"""The inventory database: open (and migrate), ingest a document once by its digest, and the
queries that the dashboard's pages, its JSON API and ``mlward query`` share, so that the
pages and the API never disagree.

SQLAlchemy Core over SQLite (``.mlward/inventory.db``, WAL so that the dashboard reads while
a scan writes) or PostgreSQL (``postgresql://`` through psycopg 3) for a team server.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Select,
    and_,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mlward._internal.inventory.documents import SEVERITIES, Document
from mlward._internal.inventory.errors import InventoryError
from mlward._internal.inventory.schema import assets, documents, findings, migrate, projects
from mlward._internal.redact import redact_credentials
from mlward.findings import Severity

MAX_PER_PAGE = 500
STATUSES = ("open", "new", "waived", "baseline", "expired-waiver")
ASSET_KINDS = ("model", "dataset", "dependency", "tool", "bucket", "source")


def database_url(db: str) -> str:
    """The SQLAlchemy URL of a ``db`` setting: a ``postgresql://`` URL (driven by psycopg 3)
    or a path to an SQLite file."""
    if db.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    if db.startswith("postgresql+psycopg://"):
        return db
    if "://" in db:
        raise InventoryError(f"inventory database {db!r}: give a file path or a "
                             "postgresql:// URL")
    return f"sqlite:///{Path(db).resolve()}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Page:
    """One page of a listing: ``items`` and where they sit in the ``total``."""

    items: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "page": self.page,
                "per_page": self.per_page, "pages": self.pages}


class IngestResult(NamedTuple):
    digest: str
    project: str
    created: bool  # False: a document with that digest was already there
    document_id: int


class FindingFilters(NamedTuple):
    project: str | None = None
    rule: str | None = None
    severity: Severity | None = None  # at or above
    path: str | None = None  # substring of the location
    status: str | None = None


class AssetFilters(NamedTuple):
    kind: str | None = None
    project: str | None = None
    q: str | None = None  # substring of the name or location
    format: str | None = None


def _paging(page: int, per_page: int) -> tuple[int, int]:
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    return page, per_page


class InventoryStore:
    """An open inventory. Thread-safe (a connection per call from the engine's pool)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> InventoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise InventoryError(f"the inventory could not be read: {exc}") from None

    # --- writing ------------------------------------------------------------------------

    def ingest(self, doc: Document, *, project: str | None = None,
               source: str = "local") -> IngestResult:
        """Add ``doc`` under ``project`` (default: its root folder's name); a document whose
        digest is already there is left as it is (``created`` False)."""
        name = (project or doc.name)[:200]
        try:
            with self.engine.begin() as conn:
                found = conn.execute(select(documents.c.id, projects.c.name)
                                     .join(projects)
                                     .where(documents.c.digest == doc.digest)).first()
                if found is not None:
                    return IngestResult(doc.digest, found[1], False, found[0])
                return self._insert(conn, doc, name, source)
        except IntegrityError:  # the same document ingested concurrently
            with self._read() as conn:
                row = conn.execute(select(documents.c.id, projects.c.name).join(projects)
                                   .where(documents.c.digest == doc.digest)).first()
            if row is None:
                raise InventoryError("the document could not be ingested") from None
            return IngestResult(doc.digest, row[1], False, row[0])
        except SQLAlchemyError as exc:
            raise InventoryError(f"the document could not be ingested: {exc}") from None

    def _project_id(self, conn: Connection, name: str, root: str) -> int:
        pid = conn.scalar(select(projects.c.id).where(projects.c.name == name))
        if pid is None:
            pid = conn.execute(insert(projects).values(name=name, root=root, created=_now())
                               ).inserted_primary_key[0]  # type: ignore[index]
        return int(pid)

    def _insert(self, conn: Connection, doc: Document, name: str, source: str) -> IngestResult:
        pid = self._project_id(conn, name, doc.root)
        same = and_(documents.c.project_id == pid, documents.c.kind == doc.kind,
                    documents.c.action == doc.action, documents.c.current == 1)
        newest = conn.execute(select(documents.c.id, documents.c.time).where(same)).first()
        current = newest is None or doc.time >= newest[1]
        if current and newest is not None:
            conn.execute(update(documents).where(documents.c.id == newest[0]).values(current=0))
            conn.execute(update(findings).where(findings.c.document_id == newest[0])
                         .values(current=0))
            conn.execute(update(assets).where(assets.c.document_id == newest[0])
                         .values(current=0))
        counts = {s: int(doc.counts.get(s, 0)) for s in SEVERITIES}
        did = int(conn.execute(insert(documents).values(
            digest=doc.digest, project_id=pid, kind=doc.kind, action=doc.action,
            time=doc.time, ingested=_now(), source=source, current=int(current),
            verdict=doc.verdict, summary=json.dumps(dict(doc.summary), sort_keys=True),
            body=json.dumps(doc.body, sort_keys=True, separators=(",", ":")), **counts,
        )).inserted_primary_key[0])  # type: ignore[index]
        if doc.findings:
            if current:  # a finding two current reports share (scan, audit) is listed once
                _supersede(conn, findings.c.fingerprint, pid,
                           {f.fingerprint for f in doc.findings})
            conn.execute(insert(findings), [
                {"document_id": did, "project_id": pid, "current": int(current),
                 "time": doc.time, **f.__dict__} for f in doc.findings])
        if doc.assets:
            if current:  # the newest observation of an asset is the one shown
                _supersede(conn, assets.c.location, pid, {a.location for a in doc.assets})
            conn.execute(insert(assets), [
                {"document_id": did, "project_id": pid, "current": int(current),
                 "kind": a.kind, "name": a.name, "location": a.location, "format": a.format,
                 "digest": a.digest, "verdict": a.verdict,
                 "data": json.dumps(dict(a.data), sort_keys=True, default=str)}
                for a in doc.assets])
        return IngestResult(doc.digest, name, True, did)

    # --- reading ------------------------------------------------------------------------

    def version(self) -> int:
        """Grows with every ingest: what live pages poll to know something new arrived."""
        with self._read() as conn:
            return int(conn.scalar(select(func.coalesce(func.max(documents.c.id), 0))) or 0)

    def projects(self) -> list[dict[str, Any]]:
        """Every project with its newest report, gate run and audit snapshot."""
        with self._read() as conn:
            rows = conn.execute(select(projects).order_by(projects.c.name)).mappings().all()
            current = conn.execute(
                select(documents.c.project_id, documents.c.kind, documents.c.action,
                       documents.c.time, documents.c.verdict, documents.c.digest,
                       *(documents.c[s] for s in SEVERITIES))
                .where(documents.c.current == 1).order_by(documents.c.time)).mappings().all()
        out = []
        for p in rows:
            mine = [d for d in current if d["project_id"] == p["id"]]
            latest = {d["kind"]: _doc_brief(d) for d in mine}
            out.append({"name": p["name"], "root": p["root"], "report": latest.get("report"),
                        "bom": latest.get("bom"), "gate": latest.get("gate"),
                        "audit": latest.get("audit")})
        return out

    def history(self, project: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The project's reports, oldest first (the overview's findings-over-time chart)."""
        with self._read() as conn:
            rows = conn.execute(
                select(documents.c.time, documents.c.verdict, documents.c.digest,
                       documents.c.action, *(documents.c[s] for s in SEVERITIES))
                .join(projects).where(projects.c.name == project,
                                      documents.c.kind == "report")
                .order_by(documents.c.time.desc()).limit(limit)).mappings().all()
        return [_doc_brief(r) for r in reversed(rows)]

    def findings(self, filters: FindingFilters | None = None, *, page: int = 1,
                 per_page: int = 50) -> Page:
        """Findings of each project's newest reports (a fingerprint they share, once), most
        severe and newest first."""
        filters = filters or FindingFilters()
        where = [findings.c.current == 1]
        if filters.project:
            where.append(projects.c.name == filters.project)
        if filters.rule:
            where.append(findings.c.rule_id == filters.rule)
        if filters.severity is not None:
            where.append(findings.c.severity >= int(filters.severity))
        if filters.path:
            where.append(findings.c.path.contains(filters.path, autoescape=True))
        if filters.status:
            where.append(findings.c.status == filters.status)
        base = select(findings, projects.c.name.label("project")).join(
            projects, findings.c.project_id == projects.c.id).where(*where)
        return self._page(base, (findings.c.severity.desc(), findings.c.time.desc(),
                                 findings.c.id), page, per_page, _finding)

    def assets(self, filters: AssetFilters | None = None, *, page: int = 1,
               per_page: int = 50) -> Page:
        """The newest observation of every model, dataset, dependency, tool and bucket."""
        filters = filters or AssetFilters()
        where = [assets.c.current == 1]
        if filters.kind:
            where.append(assets.c.kind == filters.kind)
        if filters.project:
            where.append(projects.c.name == filters.project)
        if filters.format:
            where.append(assets.c.format == filters.format)
        if filters.q:
            where.append(assets.c.name.contains(filters.q, autoescape=True)
                         | assets.c.location.contains(filters.q, autoescape=True))
        base = select(assets.c.id, assets.c.kind, assets.c.name, assets.c.location,
                      assets.c.format, assets.c.digest, assets.c.verdict,
                      projects.c.name.label("project")).join(
            projects, assets.c.project_id == projects.c.id).where(*where)
        return self._page(base, (projects.c.name, assets.c.kind, assets.c.location), page,
                          per_page, dict)

    def asset(self, asset_id: int) -> dict[str, Any] | None:
        """One asset: its facts, its history (every observation of the same location), the
        findings on it and, from the project's newest BOM, its component and lineage."""
        with self._read() as conn:
            row = conn.execute(select(assets, projects.c.name.label("project")).join(
                projects, assets.c.project_id == projects.c.id)
                .where(assets.c.id == asset_id)).mappings().first()
            if row is None:
                return None
            seen = conn.execute(
                select(assets.c.id, assets.c.digest, assets.c.verdict, assets.c.format,
                       documents.c.time, documents.c.kind, documents.c.action)
                .join(documents, assets.c.document_id == documents.c.id)
                .where(assets.c.project_id == row["project_id"],
                       assets.c.location == row["location"])
                .order_by(documents.c.time.desc()).limit(100)).mappings().all()
            on_it = conn.execute(
                select(findings).where(findings.c.project_id == row["project_id"],
                                       findings.c.current == 1,
                                       findings.c.path.startswith(row["location"],
                                                                  autoescape=True))
                .order_by(findings.c.severity.desc()).limit(200)).mappings().all()
            bom = conn.scalar(select(documents.c.body).where(
                documents.c.project_id == row["project_id"], documents.c.kind == "bom",
                documents.c.current == 1).order_by(documents.c.time.desc()).limit(1))
        out = {k: row[k] for k in ("id", "kind", "name", "location", "format", "digest",
                                   "verdict", "project")}
        out["data"] = json.loads(row["data"])
        out["history"] = [dict(r) for r in seen]
        out["findings"] = [_finding({**r, "project": row["project"]}) for r in on_it]
        out["component"], out["lineage"] = _lineage(json.loads(bom) if bom else None,
                                                    row["location"])
        return out

    def documents(self, *, kind: str | None = None, project: str | None = None,
                  page: int = 1, per_page: int = 50) -> Page:
        where = []
        if kind:
            where.append(documents.c.kind == kind)
        if project:
            where.append(projects.c.name == project)
        base = select(documents.c.digest, documents.c.kind, documents.c.action,
                      documents.c.time, documents.c.ingested, documents.c.source,
                      documents.c.verdict, documents.c.summary,
                      *(documents.c[s] for s in SEVERITIES),
                      projects.c.name.label("project")).join(projects).where(*where)
        return self._page(base, (documents.c.time.desc(), documents.c.id.desc()), page,
                          per_page, lambda r: {
                              **_doc_brief(r), "kind": r["kind"], "project": r["project"],
                              "ingested": r["ingested"], "source": r["source"],
                              "summary": json.loads(r["summary"])})

    def _page(self, base: Select[Any], order: tuple[Any, ...], page: int, per_page: int,
              item: Callable[[Any], dict[str, Any]]) -> Page:
        """One page of ``base`` in ``order``, each row made an item, and the total."""
        page, per_page = _paging(page, per_page)
        with self._read() as conn:
            total = int(conn.scalar(select(func.count()).select_from(base.subquery())) or 0)
            rows = conn.execute(base.order_by(*order).limit(per_page)
                                .offset((page - 1) * per_page)).mappings().all()
        return Page([item(r) for r in rows], total, page, per_page)

    def current_bodies(self, kind: str) -> list[tuple[str, str, Mapping[str, Any]]]:
        """(project, root, document) of every project's newest documents of ``kind``."""
        with self._read() as conn:
            rows = conn.execute(select(projects.c.name, projects.c.root, documents.c.body)
                                .join(projects).where(documents.c.kind == kind,
                                                      documents.c.current == 1)
                                .order_by(projects.c.name, documents.c.time)).all()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]


def _supersede(conn: Connection, key: Column[Any], pid: int, values: set[str]) -> None:
    """Mark the current rows of project ``pid`` whose ``key`` column holds one of ``values``
    as no longer current (a newer document lists them)."""
    table = key.table
    for chunk in _chunks(values):
        conn.execute(update(table).where(
            table.c.project_id == pid, table.c.current == 1, key.in_(chunk)).values(current=0))


def _chunks(values: set[str], size: int = 500) -> Iterator[list[str]]:
    """``values`` in lists short enough for any database's bound-parameter limit."""
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start:start + size]


def _doc_brief(r: Mapping[Any, Any]) -> dict[str, Any]:
    return {"time": r["time"], "verdict": r["verdict"], "digest": r["digest"],
            "action": r["action"], "counts": {s: r[s] for s in SEVERITIES}}


def _finding(r: Mapping[Any, Any]) -> dict[str, Any]:
    return {"project": r["project"], "rule_id": r["rule_id"],
            "severity": Severity(r["severity"]).label, "path": r["path"],
            "message": r["message"], "evidence": r["evidence"], "remediation": r["remediation"],
            "cwe": r["cwe"], "fingerprint": r["fingerprint"], "status": r["status"],
            "time": r["time"]}


def _lineage(bom: Mapping[str, Any] | None, location: str
             ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The BOM component at ``location`` and the workflows that made it or used it, each as
    ``{"run", "inputs": [(ref, name, kind)], "outputs": [...]}``."""
    if not bom:
        return None, []
    comps = {c.get("ref"): c for c in bom.get("components", ()) if isinstance(c, Mapping)}
    mine = next((c for c in comps.values() if c.get("location") == location), None)
    if mine is None:
        return None, []

    def node(ref: str) -> dict[str, str]:
        c = comps.get(ref, {})
        return {"ref": ref, "name": str(c.get("name", ref)), "kind": str(c.get("kind", "?")),
                "location": str(c.get("location", ""))}

    flows = []
    for w in bom.get("workflows", ()):
        ins, outs = list(w.get("inputs", ())), list(w.get("outputs", ()))
        if mine["ref"] in ins or mine["ref"] in outs:
            flows.append({"run": str(w.get("name") or w.get("ref")),
                          "run_id": w.get("runId") or w.get("run_id"),
                          "inputs": [node(r) for r in ins], "outputs": [node(r) for r in outs]})
    return dict(mine), flows


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def open_store(db: str) -> InventoryStore:
    """Open (creating and migrating) the inventory at ``db``: a path or a PostgreSQL URL."""
    url = database_url(db)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        with engine.connect() as conn:
            migrate(conn)
    except SQLAlchemyError as exc:
        raise InventoryError(redact_credentials(
            f"the inventory database could not be opened: {db}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:300]}")) from None
    except ModuleNotFoundError as exc:
        raise InventoryError(f"the inventory database needs {exc.name} "
                             "(pip install 'mlward[postgres]')") from None
    return InventoryStore(engine)

