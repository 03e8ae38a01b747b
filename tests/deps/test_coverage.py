"""Blind vulnerability data is inconclusive, old data is a warning in every output format
(issue 13, item 1)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlward.cli.main import main

from .conftest import OSV


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "requirements.txt").write_text("mlflow==2.9.1\nrequests==2.31.0\n")
    return root


def _record(rid: str, ecosystem: str, name: str, modified: datetime) -> dict[str, Any]:
    return {"id": rid, "modified": modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                          "ranges": [{"type": "ECOSYSTEM",
                                      "events": [{"introduced": "0"}, {"fixed": "9"}]}]}]}


def _data(folder: Path, **files: Any) -> Path:
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


def _deps(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["deps", "-q", "-f", "json", *args])
    return code, json.loads(capsys.readouterr().out)


NOW = datetime.now(timezone.utc)


@pytest.mark.parametrize(("files", "why"), [
    ({}, "holds no OSV records"),
    ({"README.md": "# not OSV", "notes.txt": "nothing"}, "holds no OSV records"),
    ({"a.json": {"foo": 1}, "b.json": "{not json", "c.yaml": "- 1"},
     "all 3 records are unreadable"),
    ({"n.json": _record("GHSA-npm1-aaaa-bbbb", "npm", "left-pad", NOW),
      "g.json": _record("GO-2024-0001", "Go", "example.com/x", NOW)},
     "covers Go, npm but not PyPI"),
], ids=["empty", "wrong-layout", "all-invalid", "other-ecosystems"])
def test_blind_data_makes_deps_and_scan_inconclusive(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, files: dict[str, Any], why: str) -> None:
    db = _data(tmp_path / "db", **files)
    code, report = _deps(["--vuln-db", str(db), str(project)], capsys)
    assert code == 2
    (skip,) = [s for s in report["skipped"] if s["inconclusive"]]
    assert skip["location"]["uri"] == "requirements.txt"
    assert why in skip["reason"] and "2 package(s) not checked (mlflow, requests)" in \
        skip["reason"]
    monkeypatch.setenv("MLWARD_VULN_DB", str(db))
    code = main(["scan", "-q", "-f", "json", "--executor", "inline", str(project)])
    report = json.loads(capsys.readouterr().out)
    assert code == 2, report["skipped"]
    assert any(why in s["reason"] for s in report["skipped"] if s["inconclusive"])


def test_a_source_among_several_that_holds_nothing_is_a_warning(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = _data(tmp_path / "empty")
    code, report = _deps(["--vuln-db", str(OSV), "--vuln-db", str(empty), str(project)], capsys)
    assert code == 1  # mlflow 2.9.1 is found through the data that covers PyPI
    assert any("holds no OSV records (ignored: other data covers PyPI)" in w
               for w in report["stats"]["warnings"])


def _stale_data(tmp_path: Path) -> Path:
    old = NOW - timedelta(days=30)
    return _data(tmp_path / "old", **{"m.json": _record("GHSA-mlfw-0000-0001", "PyPI", "mlflow",
                                                         old)})


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_old_data_is_a_warning_in_every_output_format(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    db = _stale_data(tmp_path)
    date = (NOW - timedelta(days=30)).strftime("%Y-%m-%d")
    assert main(["deps", "-q", "-f", fmt, "--vuln-db", str(db), str(project)]) == 1
    out = capsys.readouterr().out
    assert "is 30 days old" in out and date in out
    if fmt == "sarif":
        notes = json.loads(out)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        assert any("30 days old" in n["message"]["text"] for n in notes)
    # the same warning from `scan`, which checks the dependency file with the same data
    monkeypatch.setenv("MLWARD_VULN_DB", str(db))
    assert main(["scan", "-q", "-f", fmt, "--executor", "inline", str(project)]) == 1
    assert "is 30 days old" in capsys.readouterr().out


def test_the_age_limit_is_configurable_and_fresh_data_gives_no_warning(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = _stale_data(tmp_path)
    monkeypatch.setenv("MLWARD_VULN_DB_MAX_AGE_DAYS", "45")
    _, report = _deps(["--vuln-db", str(db), str(project)], capsys)
    assert "warnings" not in report["stats"]
    (fact,) = [f for f in report["facts"] if f["kind"] == "vulnerability-data"]
    assert fact["data"]["advisories"] == {"PyPI": 1}
    assert fact["data"]["newest_record"].startswith((NOW - timedelta(days=30)).strftime("%Y-%m-%d"))
    monkeypatch.delenv("MLWARD_VULN_DB_MAX_AGE_DAYS")
    fresh = _data(tmp_path / "fresh", **{"m.json": _record("GHSA-mlfw-0000-0002", "PyPI",
                                                           "mlflow", NOW)})
    _, report = _deps(["--vuln-db", str(fresh), str(project)], capsys)
    assert "warnings" not in report["stats"]


def test_some_unreadable_records_are_a_warning(project: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = _data(tmp_path / "db", **{"m.json": _record("GHSA-mlfw-0000-0003", "PyPI", "mlflow",
                                                     NOW), "bad.json": "{"})
    code, report = _deps(["--vuln-db", str(db), str(project)], capsys)
    assert code == 1
    assert any("1 of 2 records could not be read" in w for w in report["stats"]["warnings"])


def test_an_index_without_coverage_records_is_rebuilt_not_read_as_blind(tmp_path: Path) -> None:
    """Another mlward (same cache, same data) may have written the index without the
    ecosystems and dates: read as it is, it would look empty."""
    import sqlite3

    from mlward._internal.vulndb.index import open_index

    from .conftest import env_settings

    index = open_index(OSV, settings=env_settings())
    index.close()
    conn = sqlite3.connect(index.path)
    conn.execute("DELETE FROM meta WHERE key IN ('ecosystems', 'newest')")
    conn.commit()
    conn.close()
    again = open_index(OSV, settings=env_settings())
    assert again.stats is not None  # rebuilt
    (coverage,) = again.coverage()
    assert coverage.advisories.get("PyPI", 0) > 0 and coverage.newest is not None
    again.close()
