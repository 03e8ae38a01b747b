"""``mlward bom`` matches each dependency file against the OSV data once (its dependency audit;
the scan leaves those files to it), and still says what ``mlward scan`` and ``mlward deps`` say:
the same scan report (findings, fingerprints, waivers, verdicts, skips, data warnings), the
same vulnerabilities per library, the same verdict per model."""

from __future__ import annotations

import json
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlward._internal.bom.collect import Options, build_inventory
from mlward._internal.pipeline import scan
from mlward._internal.scanners.deps.audit import audit
from mlward._internal.vulndb import LocalIndex, source_for
from mlward.findings import Report
from mlward.settings import Settings, Waiver


@pytest.fixture
def deps_project(project: Path) -> Path:
    """The BOM project with dependency files of every kind the two readers treat apart."""
    # an include that is not itself named like a dependency file
    (project / "requirements.txt").write_text(
        "mlflow==2.0.0\nnumpy==1.26.4\n-r base.txt\n")
    (project / "base.txt").write_text("ray==2.6.3\n")
    # inside a model repository: its folder's verdict takes the file's findings
    (project / "models" / "bert" / "requirements.txt").write_text("gradio>=3,<4\nray==2.6.3\n")
    # an archive member: only the scan reads it
    with zipfile.ZipFile(project / "bundle.zip", "w") as zf:
        zf.writestr("requirements.txt", "mlflow==2.9.1\n")
    # pip lines in a notebook: only the audit reads them (libraries, not scan findings)
    (project / "explore.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                   "source": ["%pip install mlflow==2.9.1\n"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return project


def _waived(settings: Settings) -> Settings:
    """Waivers on dependency findings: one in force, one expired (reported as MW002)."""
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    return settings._replace(waivers=(
        Waiver("reviewed", rule="MW502", path="models/*"),
        Waiver("temporary", rule="MW501", path="base.txt", expires=yesterday)))


def _comparable(report: Report) -> dict[str, Any]:
    """The report as JSON, without its times and in an order the workers do not decide."""
    doc = report.to_dict()
    del doc["started"], doc["finished"]
    for key in ("facts", "skipped", "examined"):
        doc[key] = sorted(doc[key], key=lambda x: json.dumps(x, sort_keys=True))
    return doc


@pytest.mark.parametrize("data", ["osv", "blind", "none"])
def test_the_bom_says_what_scan_and_deps_say(deps_project: Path, settings: Settings,
                                             tmp_path: Path, data: str) -> None:
    if data == "blind":
        empty = tmp_path / "empty-osv"
        empty.mkdir()
        settings = settings._replace(vuln_db=(str(empty),))
    elif data == "none":
        settings = settings._replace(vuln_db=(), cache_dir=str(tmp_path / "no-cache"))
    settings = _waived(settings)
    source = source_for(settings)
    inventory, report, deps = build_inventory([deps_project], settings, Options(vulns=source))

    plain = scan([deps_project], settings=settings)
    assert _comparable(report) == _comparable(plain)
    verdicts = {k: str(v) for k, v in plain.verdicts().items()}
    if data == "osv":
        assert any(f.rule_id == "MW002" for f in plain.findings)  # the expired waiver
        rules = {(f.rule_id, f.location.uri, f.suppression is not None) for f in plain.findings}
        assert {("MW501", "requirements.txt", False), ("MW501", "base.txt", False),
                ("MW502", "models/bert/requirements.txt", True)} <= rules
        assert any(f.location.container_path == "bundle.zip > requirements.txt"
                   for f in plain.findings)  # the archive member, matched by the scan
        assert verdicts["models/bert"] == "dangerous"  # ray 2.6.3, in the model's folder
    else:
        assert any(s.location.uri == "requirements.txt" for s in plain.inconclusive)

    for c in inventory.components:
        if c.kind in ("model", "dataset", "service"):
            assert c.verdict == verdicts.get(c.location), c.ref

    alone = audit([deps_project], environment=False, source=source, settings=settings)
    expected: dict[str, set[tuple[Any, ...]]] = {}
    for r in alone.results:
        d = r.dependency
        if not d.unresolvable:
            ref = f"pkg:pypi/{d.key}" + (f"@{d.version}" if d.version else "")
            expected.setdefault(ref, set()).update(
                (v.id, v.severity.label if v.severity else None, v.score, v.summary,
                 tuple(v.fixed), r.result.upgrade) for v in r.result.vulnerabilities)
    got = {c.ref: {(v.id, v.severity, v.score, v.summary, v.fixed, v.upgrade)
                   for v in c.vulnerabilities}
           for c in inventory.components if c.kind == "library"}
    assert got == expected
    assert "pkg:pypi/mlflow@2.9.1" in got  # the notebook's pip line, read by the audit alone
    assert [f.to_dict() for f in deps.report.findings] == \
        [f.to_dict() for f in alone.report.findings]


def test_each_dependency_file_in_the_tree_is_looked_up_once(
        deps_project: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    lookup = LocalIndex.advisories_for

    def counted(self: LocalIndex, names: Any) -> Any:
        asked.append(sorted(set(names)))
        return lookup(self, names)

    monkeypatch.setattr(LocalIndex, "advisories_for", counted)
    build_inventory([deps_project], settings, Options(vulns=source_for(settings)))
    # the audit, for every file in the tree; the scan, for the archive member it alone reads
    assert sorted(asked) == [["gradio", "mlflow", "numpy", "ray"], ["mlflow"]]
