"""The inventory store: ingest by digest, newest-first views, filters, BOM lineage and the
migration table, on SQLite and a real PostgreSQL server."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.inventory.conftest import lineage_bom

from mlward._internal.inventory import DocumentError, open_store, parse_document
from mlward._internal.inventory.documents import report_document
from mlward._internal.inventory.schema import LATEST, schema_table
from mlward._internal.inventory.store import AssetFilters, FindingFilters
from mlward.findings import Report, Severity


def test_ingest_is_idempotent_by_digest(inventory_db: str, demo_report: Report) -> None:
    with open_store(inventory_db) as store:
        first = store.ingest(parse_document(demo_report.to_dict()))
        again = store.ingest(parse_document(json.loads(json.dumps(demo_report.to_dict()))))
        assert first.created and not again.created
        assert again.document_id == first.document_id
        assert store.documents().total == 1
        assert store.findings().total == len(demo_report.findings)


def test_newest_report_supersedes_the_older_one(inventory_db: str,
                                                demo_report: Report) -> None:
    newer = demo_report._replace(finished=datetime(2099, 1, 1, tzinfo=timezone.utc), findings=())
    with open_store(inventory_db) as store:
        store.ingest(report_document(demo_report, "scan"))
        store.ingest(report_document(newer, "scan"))
        assert store.findings().total == 0  # only the newest report's findings are current
        history = store.history("demo-project")
        assert [h["counts"]["critical"] for h in history] == [1, 0]
        assert store.projects()[0]["report"]["time"].startswith("2099")
        # An older report arriving late is history, not the current view.
        old = demo_report._replace(finished=datetime(2000, 1, 1, tzinfo=timezone.utc))
        store.ingest(report_document(old, "scan"))
        assert store.findings().total == 0


def test_finding_filters(inventory_db: str, demo_report: Report) -> None:
    with open_store(inventory_db) as store:
        store.ingest(report_document(demo_report, "scan"), project="alpha")
        everything = store.findings().items
        assert {f["project"] for f in everything} == {"alpha"}
        crit = store.findings(FindingFilters(severity=Severity.CRITICAL)).items
        assert [f["path"].split(" ")[0] for f in crit] == ["downloaded/sentiment.pkl"]
        assert store.findings(FindingFilters(rule="MW101")).total == len(
            [f for f in demo_report.findings if f.rule_id == "MW101"])
        assert store.findings(FindingFilters(path="sentiment")).total >= 1
        assert store.findings(FindingFilters(path="%")).total == 0  # LIKE escaped
        assert store.findings(FindingFilters(project="beta")).total == 0
        assert store.findings(FindingFilters(status="waived")).total == 0
        page = store.findings(page=2, per_page=1)
        assert page.page == 2 and page.per_page == 1 and page.total == len(everything)


def test_report_facts_become_assets(inventory_db: str, demo_report: Report) -> None:
    with open_store(inventory_db) as store:
        store.ingest(report_document(demo_report, "scan"))
        models = store.assets(AssetFilters(kind="model")).items
        assert "models/classifier.pt" in {m["location"] for m in models}
        assert store.assets(AssetFilters(q="classifier")).total >= 1
        assert store.assets(AssetFilters(q="no-such")).total == 0


def test_bom_lineage(inventory_db: str, tmp_path: Path) -> None:
    bom = lineage_bom(tmp_path / "demo-project")
    with open_store(inventory_db) as store:
        store.ingest(parse_document(bom.to_dict()), project="demo")
        model = store.assets(AssetFilters(kind="model")).items[0]
        assert model["digest"] == "sha256:" + "ab" * 32
        page = store.asset(model["id"])
        assert page is not None
        [flow] = page["lineage"]
        assert flow["run"] == "train"
        assert [n["location"] for n in flow["inputs"]] == ["data/train.csv"]
        assert [n["location"] for n in flow["outputs"]] == ["models/classifier.pt"]


def test_migrations_are_recorded_once(inventory_db: str) -> None:
    open_store(inventory_db).close()
    with open_store(inventory_db) as store, store.engine.connect() as conn:
        assert list(conn.scalars(select(schema_table.c.version))) == [LATEST]


@pytest.mark.parametrize("data", [[], {"kind": "other"}, {"schema_version": 2, "tool": {},
                                                        "findings": "x"}])
def test_foreign_documents_are_refused(data: object) -> None:
    with pytest.raises(DocumentError):
        parse_document(data)


def test_a_finding_two_current_reports_share_is_listed_once(inventory_db: str,
                                                            demo_report: Report) -> None:
    audit = demo_report._replace(finished=datetime(2099, 1, 1, tzinfo=timezone.utc))
    with open_store(inventory_db) as store:
        store.ingest(report_document(demo_report, "scan"))
        store.ingest(report_document(audit, "audit"))  # the same findings, seen by an audit
        assert store.findings().total == len(demo_report.findings)
        assert {d["action"] for d in store.documents().items} == {"scan", "audit"}


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    from sqlalchemy import insert

    from mlward._internal.inventory import InventoryError

    db = str(tmp_path / "inventory.db")
    with open_store(db) as store, store.engine.begin() as conn:
        conn.execute(insert(schema_table).values(version=LATEST + 1, description="future",
                                                 applied="2099-01-01T00:00:00Z"))
    with pytest.raises(InventoryError, match="newer than this mlward"):
        open_store(db)


def test_triage_states_are_filterable(inventory_db: str, demo_report: Report) -> None:
    from mlward.findings import Suppression

    f = demo_report.findings[0]
    triaged = demo_report._replace(findings=(
        f._replace(suppression=Suppression("waiver", "accepted risk")),
        f._replace(fingerprint="1" * 32, baseline="new"),
        f._replace(fingerprint="2" * 32, baseline="new"),
        f._replace(fingerprint="3" * 32, baseline="unchanged")))
    with open_store(inventory_db) as store:
        store.ingest(report_document(triaged, "scan"))
        assert store.findings(FindingFilters(status="waived")).total == 1
        assert store.findings(FindingFilters(status="new")).total == 2
        assert store.findings(FindingFilters(status="baseline")).total == 1
        assert store.findings(FindingFilters(status="open")).total == 0


def test_cloud_buckets_become_assets(inventory_db: str, demo_report: Report) -> None:
    from mlward.findings import Fact, Location

    bucket = Fact(Location("s3://models-prod"), "bucket",
                  {"provider": "aws", "public": True, "assets": []})
    with open_store(inventory_db) as store:
        store.ingest(report_document(demo_report._replace(facts=(bucket,)), "cloud"))
        [b] = store.assets(AssetFilters(kind="bucket")).items
        assert (b["name"], b["location"], b["format"]) == ("models-prod", "s3://models-prod",
                                                           "aws")
